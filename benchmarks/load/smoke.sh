#!/usr/bin/env bash
# Smoke run of the load generator against one peer (ctest label "bench"): every mode for a
# moment, so that the generator and the peers keep working. No time is asserted; wsload fails
# on a refused upgrade, an echo that differs from what was sent, a lost connection, a broadcast
# delivery lost, repeated or out of order, or when nothing at all got through.
#
#   smoke.sh WSLOAD PEER [PEER ARGUMENTS...]
#
# A peer started with --deflate is driven with wsload --deflate (but for connect, whose
# handshakes offer nothing).
set -euo pipefail
wsload=$1
shift
deflate=()
for argument in "$@"; do
    [ "$argument" = --deflate ] && deflate=(--deflate)
done

log=$(mktemp)
"$@" --port 0 >"$log" 2>&1 &
peer=$!
trap 'kill "$peer" 2>/dev/null; wait "$peer" 2>/dev/null || true; rm -f "$log"' EXIT

port=""
for _ in $(seq 100); do
    port=$(sed -n 's/^listening on \([0-9]*\)$/\1/p' "$log")
    [ -n "$port" ] && break
    kill -0 "$peer" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$port" ]; then
    echo "the peer did not start:"
    cat "$log"
    exit 1
fi

run() {
    local extra=("${deflate[@]}")
    [ "$1" = connect ] && extra=()
    echo "+ wsload $* ${extra[*]}"
    "$wsload" "$@" "${extra[@]}" --port "$port" --server-pid "$peer"
}
run echo --connections 10 --size 20 --in-flight 4 --duration 1 --warmup 0.2
run echo --connections 4 --size 70000 --text --duration 0.5 --warmup 0.1 # 64-bit lengths
run broadcast --subscribers 200 --duration 0.5 --warmup 0.2
run broadcast --subscribers 200 --publishers 4 --in-flight 8 --duration 0.5 --warmup 0.2
run idle --connections 100 --touch
run connect --concurrency 8 --duration 0.5 --warmup 0.1
