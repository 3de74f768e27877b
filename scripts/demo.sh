#!/usr/bin/env bash
# Builds (release preset) and runs an example:
#
#   scripts/demo.sh [chat] [chat_server flags]   the chat server on http://127.0.0.1:8080/
#   scripts/demo.sh protocol                     the in-memory protocol demo: a client and a server
#                                                perform the opening handshake, exchange messages
#                                                and close, byte by byte
#
# The chat is examples/chat: open the page in two browser tabs, pick names and one room. Flags go
# to chat_server, e.g. `scripts/demo.sh chat --token s3cret --rate 5` (see examples/chat/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."

demo=chat
if (($#)) && [[ $1 != -* ]]; then
  demo=$1
  shift
fi
case $demo in
  chat) target=chat_server packages=(cmake ninja-build g++ libasio-dev libssl-dev nlohmann-json3-dev) ;;
  protocol) target=protocol_demo packages=(cmake ninja-build g++) ;;
  *) sed -n '2,10s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
esac

# Installs what is missing on Debian/Ubuntu; elsewhere the configure step says what it lacks.
if command -v dpkg-query >/dev/null && command -v apt-get >/dev/null; then
  missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
  fi
fi

cmake --preset release -DDUPLEX_BUILD_TESTS=OFF -DDUPLEX_BUILD_BENCHMARKS=OFF -DDUPLEX_BUILD_FUZZ=OFF >/dev/null
cmake --build --preset release --target "$target" -j "$(nproc)"

if [[ $demo == protocol ]]; then
  exec build/release/examples/protocol_demo
fi

url=http://127.0.0.1:8080
cat <<MSG

  Chat:    open $url/ in two browser tabs, pick a name each and the same room
  Echo:    ws://127.0.0.1:8080/echo   (any WebSocket client)
  Health:  curl $url/health     Metrics: curl $url/metrics
  Stop:    Ctrl-C (closes every connection with 1001)

MSG
exec build/release/examples/chat/chat_server --host 127.0.0.1 --port 8080 "$@"
