#!/usr/bin/env bash
# Interop tests of duplex against real peers, one case per invocation (ctest runs each as a test):
#
#   run_interop.sh CASE [--echo-server PATH] [--echo-client PATH]
#
#   server-python-ws  server-python-wss   our echo_server, Python websockets client (client_python.py)
#   server-node-ws    server-node-wss     our echo_server, Node ws client (client_node.js)
#   client-python-ws  client-python-wss   our echo_client, Python websockets server (server_python.py)
#   client-node-ws    client-node-wss     our echo_client, Node ws server (server_node.js)
#
# The binaries default to build/ci-gcc/examples. Python is /usr/bin/python3 (Debian's
# python3-websockets is installed for it), or $DUPLEX_INTEROP_PYTHON. Node finds `ws` through
# $NODE_PATH or tests/interop/node_modules (`npm ci` there). wss cases make a self-signed
# certificate for localhost and 127.0.0.1 with `openssl` and have the peer trust it.
# Exit status: 0 pass, 1 fail, 77 skipped (a peer is missing), 2 usage.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
python=${DUPLEX_INTEROP_PYTHON:-/usr/bin/python3}
echo_server=$root/build/ci-gcc/examples/echo_server
echo_client=$root/build/ci-gcc/examples/echo_client
step_timeout=60 # seconds: no single step may take longer, so nothing can hang CI

usage() {
  sed -n '2,9s/^# \{0,1\}//p' "$0" >&2
  exit 2
}
(($# >= 1)) || usage
case_name=$1
shift
while (($#)); do
  case $1 in
    --echo-server) echo_server=$2; shift 2 ;;
    --echo-client) echo_client=$2; shift 2 ;;
    *) usage ;;
  esac
done
[[ $case_name =~ ^(server|client)-(python|node)-(ws|wss)$ ]] || usage
role=${BASH_REMATCH[1]} peer=${BASH_REMATCH[2]} scheme=${BASH_REMATCH[3]}

work=$(mktemp -d "${TMPDIR:-/tmp}/duplex-interop.XXXXXX")
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}
skip() {
  echo "SKIPPED: $*"
  exit 77
}

# Peer availability: a missing peer skips the case rather than failing it.
case $peer in
  python)
    "$python" -c 'import websockets' 2>/dev/null || skip "$python cannot import websockets (apt install python3-websockets)"
    peer_cmd=("$python") ;;
  node)
    command -v node >/dev/null || skip "node is not installed"
    (cd "$here" && node -e 'require("ws")' 2>/dev/null) || skip "node cannot find ws (run npm ci in tests/interop, or set NODE_PATH)"
    peer_cmd=(node) ;;
esac
[[ $scheme == ws ]] || command -v openssl >/dev/null || skip "openssl is not installed"
for binary in "$echo_server" "$echo_client"; do
  [[ -x $binary ]] || { echo "FAIL: $binary is not built"; exit 1; }
done

tls_server_args=()
ca_args=()
if [[ $scheme == wss ]]; then
  if ! openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost \
      -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -days 2 \
      -keyout "$work/key.pem" -out "$work/cert.pem" >"$work/openssl.log" 2>&1; then
    cat "$work/openssl.log"
    echo "FAIL: could not make a certificate"
    exit 1
  fi
  tls_server_args=(--tls-cert "$work/cert.pem" --tls-key "$work/key.pem")
  ca_args=(--ca "$work/cert.pem")
fi

# start NAME PATTERN COMMAND...: runs COMMAND in the background (bounded by a timeout), output in
# $work/NAME.out and .err, waits for a line matching PATTERN (sed, \1 = the port) and sets
# started_pid and started_port.
start() {
  local name=$1 pattern=$2
  shift 2
  # --foreground: timeout passes a SIGTERM on to COMMAND once (without it, it signals the whole
  # group as well, and a second SIGTERM can hit echo_server after its graceful shutdown ended).
  timeout --foreground $((2 * step_timeout)) "$@" >"$work/$name.out" 2>"$work/$name.err" &
  started_pid=$!
  pids+=("$started_pid")
  started_port=
  local i
  for ((i = 0; i < 200; ++i)); do
    started_port=$(sed -n "s/$pattern/\\1/p" "$work/$name.out" 2>/dev/null | head -n 1)
    [[ -n $started_port ]] && return 0
    kill -0 "$started_pid" 2>/dev/null || break
    sleep 0.05
  done
  echo "FAIL: $name did not start: $*"
  cat "$work/$name.out" "$work/$name.err"
  exit 1
}

# wait_exit PID SECONDS: waits for a background process to end; sets exit_status (or empty).
wait_exit() {
  local i
  exit_status=
  for ((i = 0; i < $2 * 20; ++i)); do
    if ! kill -0 "$1" 2>/dev/null; then
      wait "$1"
      exit_status=$?
      return 0
    fi
    sleep 0.05
  done
}

show_log() { # show_log FILE: prints a log, clipped, indented
  [[ -s $1 ]] && { echo "--- $(basename "$1"):"; head -c 4000 "$1" | sed 's/^/  /'; }
}

server_case() {
  local listening='^echo server listening on .*:\([0-9][0-9]*\)$'
  start echo_server "$listening" "$echo_server" --port 0 --threads 2 --max-message $((8 << 20)) "${tls_server_args[@]}"
  local big_pid=$started_pid big_port=$started_port
  start echo_server_small "$listening" "$echo_server" --port 0 --max-message 1000 "${tls_server_args[@]}"
  local small_pid=$started_pid small_port=$started_port
  local script=$here/client_$peer.py
  [[ $peer == node ]] && script=$here/client_node.js

  timeout $step_timeout "${peer_cmd[@]}" "$script" "$scheme://localhost:$big_port/" \
    --small-url "$scheme://localhost:$small_port/" "${ca_args[@]}" --shutdown-pid "$big_pid"
  local status=$?
  ((status == 124)) && fail "the $peer client timed out after ${step_timeout}s"
  ((status != 0 && status != 124)) && fail "the $peer client reported failures (exit $status)"

  # Its last case sent SIGTERM: a graceful shutdown ends the server promptly and cleanly.
  wait_exit "$big_pid" 10
  if [[ -z $exit_status ]]; then
    fail "echo_server still running 10 s after SIGTERM"
  elif ((exit_status != 0)); then
    fail "echo_server exited with status $exit_status after SIGTERM"
  fi
  kill -TERM "$small_pid" 2>/dev/null
  wait_exit "$small_pid" 10
  [[ $exit_status == 0 ]] || fail "the second echo_server did not exit cleanly on SIGTERM (status '${exit_status}')"
  if ((failures)); then
    show_log "$work/echo_server.err"
    show_log "$work/echo_server_small.err"
  fi
}

# client_lines PATH: text lines through echo_client; the replies must equal the lines.
client_lines() {
  local path=$1 input=$work/lines.txt out=$work/client.out
  {
    echo "hello"
    echo ""
    echo "héllo wörld — ✓ 😀 日本語"
    local n
    for n in 125 126 65535 65536; do head -c "$n" /dev/zero | tr '\0' 'a'; echo; done
    echo "bye"
  } >"$input"
  timeout $step_timeout "$echo_client" "$scheme://localhost:$port$path" "${ca_args[@]}" <"$input" >"$out" 2>"$work/client.err"
  local status=$?
  connections[$path]=$((${connections[$path]:-0} + 1))
  ((status == 0)) || { fail "echo_client $path (text lines) exited with $status"; show_log "$work/client.err"; }
  sed -n 's/^< \(.*\)  ([0-9]* us)$/\1/p' "$out" >"$work/replies.txt"
  if ! cmp -s "$input" "$work/replies.txt"; then
    fail "echo_client $path: the replies differ from the lines sent ($(wc -l <"$input") lines sent, $(wc -l <"$work/replies.txt") replies)"
    diff <(cut -c1-80 "$input") <(cut -c1-80 "$work/replies.txt") | head -n 20
  fi
}

# client_binary PATH COUNT SIZE: COUNT binary messages of SIZE bytes; expects COUNT replies.
client_binary() {
  local path=$1 count=$2 size=$3 out=$work/client.out
  timeout $step_timeout "$echo_client" "$scheme://localhost:$port$path" "${ca_args[@]}" \
    --count "$count" --size "$size" </dev/null >"$out" 2>"$work/client.err"
  local status=$?
  connections[$path]=$((${connections[$path]:-0} + 1))
  ((status == 0)) || { fail "echo_client $path --count $count --size $size exited with $status"; show_log "$work/client.err"; }
  local got
  got=$(grep -c "^< $size bytes  (" "$out")
  ((got == count)) || { fail "echo_client $path --count $count --size $size: $got of $count replies of $size bytes"; show_log "$out"; }
}

client_case() {
  local script=$here/server_$peer.py
  [[ $peer == node ]] && script=$here/server_node.js
  start peer_server '^listening \([0-9][0-9]*\)$' "${peer_cmd[@]}" "$script" "${tls_server_args[@]}"
  local server_pid=$started_pid
  port=$started_port
  declare -gA connections=()

  # The peer server's own check first: a client that never answers the ping sent between
  # fragments must be reported by the server (otherwise the /fragment cases below prove nothing).
  timeout $step_timeout "$python" "$here/silent_client.py" "$scheme://localhost:$port/fragment?silent" \
    "${ca_args[@]}" >"$work/silent.out" 2>&1
  local status=$?
  ((status == 0)) || { fail "silent_client.py could not run its exchange (exit $status)"; show_log "$work/silent.out"; }
  local i
  for ((i = 0; i < 100; ++i)); do
    grep -q '^closed /fragment?silent ' "$work/peer_server.out" && break
    sleep 0.05
  done
  if grep -q '^error /fragment?silent .*no pong' "$work/peer_server.out"; then
    echo "/fragment?silent: the $peer server reported the client that never answered its ping"
  else
    fail "the $peer server did not report a client that never answered its ping between fragments"
  fi

  local path spec
  for path in / /fragment; do
    client_lines "$path"
    # shellcheck disable=SC2086
    for spec in "1 0" "1 125" "1 126" "1 65535" "1 65536" "3 70000" "1 $((4 << 20))"; do
      client_binary "$path" $spec # "COUNT SIZE": two words on purpose
    done
  done

  # The server closes with 4001 after the first echo: our client must answer with 4001 and
  # end with status 1, saying that the connection ended with 4001, for the line it could not
  # send (not hang, not crash, not claim success).
  printf 'one\ntwo\n' | timeout $step_timeout "$echo_client" "$scheme://localhost:$port/close" "${ca_args[@]}" \
    >"$work/client.out" 2>"$work/client.err"
  status=$?
  if ((status == 124)); then
    fail "echo_client hung after the server closed"
  elif ((status != 1)); then
    fail "/close: echo_client exited with $status, expected 1 (the second line could not be sent)"
  fi
  grep -q '^connection ended: .*close code 4001, server says bye' "$work/client.err" ||
    fail "/close: echo_client did not report the server's close 4001 'server says bye'"
  grep -q '^< one  (' "$work/client.out" || fail "/close: no echo of the first line"
  grep -q '^< two' "$work/client.out" && fail "/close: a reply after the server's close"
  echo "/close: echo_client exit $status; stderr: $(head -c 200 "$work/client.err")"

  # Secure by default: without --ca the self-signed certificate must be refused.
  if [[ $scheme == wss ]]; then
    echo "untrusted" | timeout $step_timeout "$echo_client" "wss://localhost:$port/" >"$work/client.out" 2>"$work/client.err"
    status=$?
    if ((status == 0)) || grep -q '^< ' "$work/client.out"; then
      fail "echo_client accepted a self-signed certificate it was not told to trust (exit $status)"
    else
      echo "untrusted certificate refused: $(head -c 200 "$work/client.err")"
    fi
  fi

  # The server logs the close code and reason our client sent on each connection (and one for
  # the silent client).
  local log=$work/peer_server.out expected=$((${connections[/]} + ${connections[/fragment]} + 2))
  for ((i = 0; i < 100; ++i)); do
    (($(grep -c '^closed ' "$log") >= expected)) && break
    sleep 0.05
  done
  for path in / /fragment; do
    local closed
    closed=$(grep -c "^closed $path 1000 bye\$" "$log")
    ((closed == ${connections[$path]})) ||
      fail "$path: the $peer server saw $closed of ${connections[$path]} clean closes with 1000 'bye'"
  done
  grep -q '^closed /close 4001 *$' "$log" || fail "/close: our client did not answer the server's close with 4001"
  grep -v '^error /fragment?silent ' "$log" | grep -q '^error ' && fail "the $peer server reported errors"
  kill "$server_pid" 2>/dev/null
  if ((failures)); then
    show_log "$log"
    show_log "$work/peer_server.err"
  fi
}

echo "== $case_name: $(basename "$echo_server")/$(basename "$echo_client") vs $peer over $scheme://"
started=$SECONDS
if [[ $role == server ]]; then server_case; else client_case; fi
if ((failures)); then
  echo "== $case_name: FAILED ($failures problem(s)) in $((SECONDS - started)) s"
  exit 1
fi
echo "== $case_name: passed in $((SECONDS - started)) s"
