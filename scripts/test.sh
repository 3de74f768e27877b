#!/usr/bin/env bash
# Everything CI runs, in one command: installs what is missing (Debian/Ubuntu), then builds and
# tests each flavour — g++ Debug with warnings as errors; clang++ with ASan+UBSan, plus a
# bounded fuzz run; clang++ with TSan for the threaded (Asio-level) tests. Exit status is
# non-zero if any build or test fails. DUPLEX_TEST_PRESETS="ci-gcc" runs a subset.
#
# Each flavour's results are counted from ctest's JUnit file by scripts/ctest_summary.py:
# a test that reports itself skipped is counted as skipped, never as passed. With CI=true, a
# skip (or absence) of a test that scripts/required_tests.txt requires for the flavour is a
# failure. The last line is "N passed, N failed, N skipped".
set -uo pipefail
cd "$(dirname "$0")/.."

packages=(cmake ninja-build g++ clang clang-format libclang-rt-14-dev catch2 libasio-dev libssl-dev openssl
  python3-websockets chromium nlohmann-json3-dev)
# permessage-deflate (duplex::deflate, its unit tests and fuzz target) needs zlib.
packages+=(zlib1g-dev)
# The benchmarks' ctest smoke runs (label bench): Google Benchmark, and Beast and websocketpp peers.
packages+=(libbenchmark-dev libboost-dev libwebsocketpp-dev)
# The Redis backplane's tests start their own redis-server (never a mock).
packages+=(redis-server)
# Node ws is an interop peer; keep an existing Node (with its own npm) rather than mixing in apt's.
command -v node >/dev/null && command -v npm >/dev/null || packages+=(nodejs npm)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "== installing: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" ||
    { echo "could not install ${missing[*]}"; exit 1; }
fi

jobs=$(nproc)
start=$SECONDS
status=0
passed=0
failed=0
skipped=0

echo "== format: clang-format --dry-run over tracked sources"
if ! git ls-files '*.hpp' '*.cpp' | xargs clang-format --dry-run --Werror; then
  echo "== format: files differ from .clang-format (run clang-format -i on them)"
  status=1
  failed=$((failed + 1))
fi
flavours=(${DUPLEX_TEST_PRESETS:-ci-gcc ci-clang-sanitize ci-clang-thread})
for preset in "${flavours[@]}"; do
  echo "== $preset: configure and build"
  # Configure output stays visible: it says which test suites are on, and why one is not.
  if ! cmake --preset "$preset" || ! cmake --build --preset "$preset" -j "$jobs"; then
    echo "== $preset: BUILD FAILED"
    status=1
    failed=$((failed + 1))
    continue
  fi
  echo "== $preset: test"
  junit=$(mktemp)
  # --timeout: a default for any test registered without its own TIMEOUT, so nothing hangs CI.
  ctest --preset "$preset" -j "$jobs" --timeout 600 --output-junit "$junit"
  ctest_status=$?
  summary=$(python3 scripts/ctest_summary.py --preset "$preset" --junit "$junit" \
    --required scripts/required_tests.txt --ctest-status "$ctest_status")
  echo "$summary"
  if [[ $(tail -n 1 <<<"$summary") =~ ([0-9]+)\ passed,\ ([0-9]+)\ failed,\ ([0-9]+)\ skipped$ ]]; then
    passed=$((passed + BASH_REMATCH[1]))
    failed=$((failed + BASH_REMATCH[2]))
    skipped=$((skipped + BASH_REMATCH[3]))
    ((BASH_REMATCH[2] == 0)) || status=1
  else
    echo "== $preset: could not count the results"
    status=1
    failed=$((failed + 1))
  fi
  rm -f "$junit"
done
echo "== all flavours took $((SECONDS - start)) s"
echo "${passed} passed, ${failed} failed, ${skipped} skipped"
exit $status
