#!/usr/bin/env bash
# benchmarks/run.sh — the whole benchmark in one command: installs what is missing (Debian),
# builds everything in Release, runs the micro benchmarks (and, through
# benchmarks/micro/flavours.sh, the masking ones in four builds: g++ and clang++, generic and
# -march=native), then every load scenario against every server in interleaved rounds (tcp
# duplex beast ..., tcp duplex beast ..., ...) with the server pinned to core 0 and the load
# generator to core 1, and writes docs/benchmarks.md with the tables (medians, min–max, ratios
# to the TCP ceiling and to Beast, the same per second of server CPU, both sides' CPU share),
# the machine, the exact commands, and PNG charts in docs/benchmarks/. About 40 minutes on 2
# cores (one round of every scenario and server takes about 13); run it on a quiet machine, and
# commit what it wrote together with the change it measures.
#
#   benchmarks/run.sh
#
# Environment:
#   DUPLEX_BENCH_QUICK=1      a smoke run of about 3 minutes: tiny durations and counts; writes
#                             into the build directory instead of docs/ unless told otherwise
#   DUPLEX_BENCH_ROUNDS=N     rounds (default 3)
#   DUPLEX_BENCH_SERVERS="tcp duplex ..."  a subset of: tcp duplex duplex_held duplex_nctx duplex2
#                             beast websocketpp node
#   DUPLEX_BENCH_SCENARIOS="echo-small ..." a subset (names in the scenario list below, and
#                             "redis" for redis_fanout, which needs redis-server)
#   DUPLEX_BENCH_BUILD=DIR    build directory (default build/bench)
#   DUPLEX_BENCH_JOBS=N       parallel compile jobs (default: every core)
#   DUPLEX_BENCH_DOC=FILE     the page to write (default docs/benchmarks.md)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

# Broadcast and idle runs hold 10,000 sockets and more, in the server and in the generator:
# lift the soft limit on open files to the hard one for both (and for Node, which does not).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# Before the build, which loads the machine itself: how quiet it was when we were started.
loadavg_at_start=$(cut -d' ' -f1-3 /proc/loadavg)
quick=${DUPLEX_BENCH_QUICK:-0}
rounds=${DUPLEX_BENCH_ROUNDS:-3}
build=${DUPLEX_BENCH_BUILD:-build/bench}
if [ "$quick" = 1 ]; then
    doc=${DUPLEX_BENCH_DOC:-$build/report/benchmarks.md}
else
    doc=${DUPLEX_BENCH_DOC:-docs/benchmarks.md}
fi
results=$build/results
# What the four-build comparison (benchmarks/micro/flavours.sh) measures: masking, and parsing
# small frames, which includes it.
flavour_filter='bm_mask|bm_parse_small_frames'
server_core=0
generator_core=1

# ---- what each run does ------------------------------------------------------------------------

if [ "$quick" = 1 ]; then
    duration=0.5 warmup=0.2 subscribers=500 few_subscribers=200 idle_connections=300
    deflate_idle_connections=300 deflate_touched_connections=100
    micro_time=0.01
else
    duration=4 warmup=1 subscribers=10000 few_subscribers=1000 idle_connections=10000
    # After one compressed message a compressor with context takeover holds ~300 KiB: 1,000
    # such connections are already 300 MiB in the server and as much in the generator.
    deflate_idle_connections=10000 deflate_touched_connections=1000
    micro_time=0.2
fi
# 100,000 idle connections, duplex only: each side then holds that many sockets, which the
# hard limit on open files must allow (wsload spreads them over 127.0.0.x source addresses, as
# one address has only ~28,000 ports towards one server port).
large_idle_connections=100000
large_idle_skipped=""
if [ "$quick" = 1 ]; then
    large_idle_skipped="not in a quick run"
elif [ "$(ulimit -Hn)" != unlimited ] && (($(ulimit -Hn) < large_idle_connections + 200)); then
    large_idle_skipped="not run: the hard limit on open files here is $(ulimit -Hn) per process"
fi
broadcast_args="--size 32 --duration $duration --warmup $warmup"
echo_args="--connections 100 --duration $duration --warmup $warmup"
# name|wsload arguments (the port and the server's PID are added to each run)
scenarios=(
    "echo-small|echo $echo_args --size 20 --in-flight 1"
    "echo-small-pipelined|echo $echo_args --size 20 --in-flight 16"
    "echo-16k|echo $echo_args --size 16384 --in-flight 1"
    "broadcast|broadcast --subscribers $subscribers $broadcast_args"
    "broadcast-inflight-few|broadcast --subscribers $few_subscribers --publishers 4 --in-flight 8 $broadcast_args"
    "broadcast-inflight|broadcast --subscribers $subscribers --publishers 4 --in-flight 8 $broadcast_args"
    "idle|idle --connections $idle_connections"
    "idle-touched|idle --connections $idle_connections --touch"
    "idle-large|idle --connections $large_idle_connections"
    "connect|connect --concurrency 32 --duration $duration --warmup $warmup"
    # permessage-deflate: only the servers that take --deflate (see deflate_servers below)
    "deflate-echo-200|echo $echo_args --size 200 --in-flight 1 --json-like --deflate"
    "deflate-echo-16k|echo $echo_args --size 16384 --in-flight 1 --json-like --deflate"
    "deflate-broadcast|broadcast --subscribers $few_subscribers $broadcast_args --size 2048 --json-like --deflate"
    "deflate-idle|idle --connections $deflate_idle_connections --deflate"
    "deflate-idle-touched|idle --connections $deflate_touched_connections --deflate --touch --size 2048 --json-like"
)
# The servers that take --deflate, and run the deflate-* scenarios with it; duplex_nctx runs
# only those.
deflate_servers=" duplex duplex_nctx beast node "
if [ -n "$large_idle_skipped" ]; then
    chosen=()
    for s in "${scenarios[@]}"; do [[ ${s%%|*} == idle-large ]] || chosen+=("$s"); done
    scenarios=("${chosen[@]}")
fi
if [ -n "${DUPLEX_BENCH_SCENARIOS:-}" ]; then
    chosen=()
    for s in "${scenarios[@]}"; do
        [[ " $DUPLEX_BENCH_SCENARIOS " == *" ${s%%|*} "* ]] && chosen+=("$s")
    done
    scenarios=("${chosen[@]}")
fi

# ---- dependencies ------------------------------------------------------------------------------

packages=(cmake ninja-build g++ libasio-dev libbenchmark-dev libboost-dev libwebsocketpp-dev
    gnuplot-nox python3 redis-server)
command -v node >/dev/null && command -v npm >/dev/null || packages+=(nodejs npm)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "== installing: ${missing[*]}"
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi

# ---- build -------------------------------------------------------------------------------------

echo "== build (Release) in $build"
# Examples too: echo_server is the server of the TLS idle measurement.
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDUPLEX_BUILD_BENCHMARKS=ON \
    -DDUPLEX_BUILD_TESTS=OFF -DDUPLEX_BUILD_EXAMPLES=ON -DDUPLEX_BUILD_FUZZ=OFF >/dev/null
cmake --build "$build" -j "${DUPLEX_BENCH_JOBS:-$(nproc)}"
bin=$build/benchmarks

# Node ws, the version the interop tests pin.
node_dir=$build/node
mkdir -p "$node_dir"
cp tests/interop/package.json tests/interop/package-lock.json "$node_dir/"
(cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)

# ---- servers -----------------------------------------------------------------------------------

# name|cores|command (the port is added as --port 0; the server prints "listening on PORT")
all_servers=(
    "tcp|$server_core|$bin/tcp_echo"
    "duplex|$server_core|$bin/duplex_echo"
    "duplex_held|$server_core|$bin/duplex_echo --hold-read-buffer"
    "duplex_nctx|$server_core|$bin/duplex_echo --no-context-takeover"
    "duplex2|$server_core,$generator_core|$bin/duplex_echo --threads 2"
    "beast|$server_core|$bin/beast_echo"
    "websocketpp|$server_core|$bin/websocketpp_echo"
    "node|$server_core|env NODE_PATH=$node_dir/node_modules node benchmarks/peers/node/ws_echo.js"
)
servers=()
for s in "${all_servers[@]}"; do
    IFS='|' read -r name _ command <<<"$s"
    if [ -n "${DUPLEX_BENCH_SERVERS:-}" ] && [[ " $DUPLEX_BENCH_SERVERS " != *" $name "* ]]; then
        continue
    fi
    program=${command%% *}
    [ "$program" = env ] && program=node
    if ! command -v "$program" >/dev/null && [ ! -x "$program" ]; then
        echo "== $name: skipped ($program was not built or is not installed)"
        continue
    fi
    servers+=("$s")
done

rm -rf "$results"
mkdir -p "$results"
server_pid=""
stop_server() {
    [ -n "$server_pid" ] || return 0
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
}
trap stop_server EXIT

# Starts a server pinned to its cores; sets server_pid and server_port. The peers print
# "listening on PORT", examples/echo_server "echo server listening on ws://HOST:PORT".
start_server() {
    local cores=$1 command=$2 log=$results/server.log
    # shellcheck disable=SC2086 # the command is a list of words
    taskset -c "$cores" $command --port 0 >"$log" 2>&1 &
    server_pid=$!
    server_port=""
    for _ in $(seq 200); do
        server_port=$(sed -n 's/^\(echo server \)\{0,1\}listening on \([a-z]*:\/\/.*:\)\{0,1\}\([0-9]*\)$/\3/p' "$log")
        [ -n "$server_port" ] && return 0
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.05
    done
    echo "   the server did not start: $(cat "$log")"
    stop_server
    return 1
}

{
    echo "servers (each started with --port 0, a free port; pinned with taskset):"
    for s in "${servers[@]}"; do
        IFS='|' read -r name cores command <<<"$s"
        echo "  $name: taskset -c $cores ${command/$root\//} --port 0"
    done
    echo "  (deflate-* scenarios: the servers among$deflate_servers, with --deflate)"
    echo "load generator, pinned to core $generator_core, one run per scenario, server and round:"
    for s in "${scenarios[@]}"; do
        echo "  ${s%%|*}: taskset -c $generator_core $bin/wsload ${s#*|} --port PORT --server-pid PID --json"
    done
    echo "micro benchmarks, pinned to core $server_core:"
    echo "  taskset -c $server_core $bin/duplex_micro_bench --benchmark_min_time=$micro_time"
    echo "  benchmarks/micro/flavours.sh --core $server_core --rounds 3 --min-time $micro_time --filter '$flavour_filter'"
} >"$results/commands.txt"

# Run facts for the report.
cat >"$results/meta.json" <<EOF
{"quick": $([ "$quick" = 1 ] && echo true || echo false), "rounds": $rounds,
 "duration_s": $duration, "warmup_s": $warmup, "subscribers": $subscribers,
 "few_subscribers": $few_subscribers,
 "idle_connections": $idle_connections, "micro_min_time_s": $micro_time,
 "large_idle_connections": $large_idle_connections, "large_idle_skipped": "$large_idle_skipped",
 "started": "$(date -u +%Y-%m-%dT%H:%M:%SZ)", "loadavg_at_start": "$loadavg_at_start",
 "server_core": $server_core, "generator_core": $generator_core,
 "commit": "$(git rev-parse --short HEAD)",
 "dirty": $([ -n "$(git status --porcelain -- include benchmarks)" ] && echo true || echo false),
 "build_dir": "$build", "node_modules": "$node_dir/node_modules"}
EOF

if awk '{ exit !($1 > 0.5) }' <<<"$loadavg_at_start"; then
    echo "== warning: load average $loadavg_at_start before the build: this machine is not quiet," \
        "and the numbers will show it"
fi

# ---- micro benchmarks --------------------------------------------------------------------------

start=$SECONDS
failures=0
if [ -x "$bin/duplex_micro_bench" ]; then
    echo "== micro benchmarks"
    taskset -c "$server_core" "$bin/duplex_micro_bench" --benchmark_min_time="$micro_time" \
        --benchmark_out="$results/micro.json" --benchmark_out_format=json >"$results/micro.txt"
    echo "== micro benchmarks in four builds (g++, clang++; generic and -march=native)"
    # Three rounds, best of three: one round on a busy machine can put any build at 0.5x.
    benchmarks/micro/flavours.sh --out "$build/micro-flavours" --core "$server_core" --rounds 3 \
        --min-time "$micro_time" --filter "$flavour_filter" >"$results/flavours.txt" ||
        { echo "   FAILED: $(tail -5 "$results/flavours.txt")"; failures=$((failures + 1)); }
    mkdir -p "$results/flavours"
    cp "$build"/micro-flavours/micro-*.json "$results/flavours/" 2>/dev/null || true
else
    echo "== micro benchmarks skipped (Google Benchmark missing)"
fi

# ---- load scenarios, interleaved rounds --------------------------------------------------------

for round in $(seq "$rounds"); do
    for scenario in "${scenarios[@]}"; do
        scenario_name=${scenario%%|*}
        wsload_args=${scenario#*|}
        for s in "${servers[@]}"; do
            IFS='|' read -r name cores command <<<"$s"
            if [[ $scenario_name == deflate-* ]]; then
                [[ $deflate_servers == *" $name "* ]] || continue
                command="$command --deflate"
            elif [ "$name" = duplex_nctx ]; then
                continue
            elif [ "$scenario_name" = idle-large ] && [ "$name" != duplex ]; then
                continue
            fi
            printf '== round %s/%s  %-22s %-12s ' "$round" "$rounds" "$scenario_name" "$name"
            if ! start_server "$cores" "$command"; then
                failures=$((failures + 1))
                continue
            fi
            # shellcheck disable=SC2086 # wsload_args is a list of words
            if taskset -c "$generator_core" "$bin/wsload" $wsload_args --port "$server_port" \
                --server-pid "$server_pid" --json >"$results/run.json" 2>"$results/run.err"; then
                printf '{"round":%s,"scenario":"%s","server":"%s","result":%s}\n' "$round" \
                    "$scenario_name" "$name" "$(cat "$results/run.json")" >>"$results/results.jsonl"
                python3 benchmarks/report.py --summary "$results/run.json"
            else
                failures=$((failures + 1))
                echo "FAILED: $(head -c 300 "$results/run.err")"
            fi
            stop_server
            sleep 0.2 # let the kernel release the sockets of the run before
        done
    done
done

# ---- idle memory over TLS ----------------------------------------------------------------------

# wsload speaks plain TCP only: tls_idle.py (Python's ssl) opens the same number of idle
# connections over ws:// and wss:// to one server program, examples/echo_server.
echo_server=$build/examples/echo_server
if [ -x "$echo_server" ] && [ -z "${DUPLEX_BENCH_SERVERS:-}" ] && command -v openssl >/dev/null; then
    tls_dir=$(mktemp -d)
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tls_dir/key.pem" -out "$tls_dir/cert.pem" \
        -days 1 -subj /CN=localhost >/dev/null 2>&1
    echo "  idle-tls: taskset -c $server_core examples/echo_server --port 0 [--tls-cert C --tls-key K];" \
        "benchmarks/load/tls_idle.py --connections $idle_connections [--plain] --json" \
        >>"$results/commands.txt"
    for round in $(seq "$rounds"); do
        for scheme in ws wss; do
            printf '== round %s/%s  %-22s %-12s ' "$round" "$rounds" idle-tls "$scheme"
            if [ "$scheme" = wss ]; then
                server_args="--tls-cert $tls_dir/cert.pem --tls-key $tls_dir/key.pem"
                client_args=""
            else
                server_args="" client_args="--plain"
            fi
            if ! start_server "$server_core" "$echo_server $server_args"; then
                failures=$((failures + 1))
                continue
            fi
            # shellcheck disable=SC2086 # a list of words
            if taskset -c "$generator_core" python3 benchmarks/load/tls_idle.py \
                --port "$server_port" --server-pid "$server_pid" \
                --connections "$idle_connections" $client_args --json >"$results/run.json" 2>"$results/run.err"; then
                printf '{"round":%s,"scenario":"idle-tls","server":"%s","result":%s}\n' "$round" \
                    "$scheme" "$(cat "$results/run.json")" >>"$results/results.jsonl"
                sed -E 's/.*"(bytes_per_connection)": ?([0-9.]+).*/\1 \2/' "$results/run.json"
            else
                failures=$((failures + 1))
                echo "FAILED: $(head -c 300 "$results/run.err")"
            fi
            stop_server
            sleep 0.2
        done
    done
    rm -rf "$tls_dir"
fi

# ---- rooms across processes through Redis ------------------------------------------------------

# redis_fanout against a redis-server of our own on a free port, Redis pinned to the server's
# core and the benchmark (its publisher and every receiving node) to the generator's: fan-out
# against in-process rooms, a publish rate ramped until Redis or the receivers saturate, and the
# two channel layouts. One run, not rounds: the ramp alone is a series of runs.
redis_server_bin=$(command -v redis-server || true)
if [ -x "$bin/redis_fanout" ] && [ -n "$redis_server_bin" ] && [ -z "${DUPLEX_BENCH_SERVERS:-}" ] &&
    { [ -z "${DUPLEX_BENCH_SCENARIOS:-}" ] || [[ " $DUPLEX_BENCH_SCENARIOS " == *" redis "* ]]; }; then
    if [ "$quick" = 1 ]; then
        redis_args="--nodes 4 --messages 5000 --size 64 --duration 0.3"
    else
        redis_args="--nodes 4 --messages 100000 --size 64 --duration 2"
    fi
    redis_dir=$(mktemp -d)
    redis_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    echo "  redis: taskset -c $server_core redis-server --port PORT --save '' --appendonly no;" \
        "taskset -c $generator_core $bin/redis_fanout --redis redis://127.0.0.1:PORT/0 --mode all $redis_args" \
        >>"$results/commands.txt"
    printf '== redis fan-out, ramp and channel layouts (redis-server %s) ' \
        "$("$redis_server_bin" --version | sed -n 's/.*v=\([0-9.]*\).*/\1/p')"
    taskset -c "$server_core" "$redis_server_bin" --port "$redis_port" --bind 127.0.0.1 --save '' \
        --appendonly no --dir "$redis_dir" --logfile "$redis_dir/redis.log" &
    redis_pid=$!
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null && break
        sleep 0.05
    done
    # shellcheck disable=SC2086 # a list of words
    if taskset -c "$generator_core" "$bin/redis_fanout" --redis "redis://127.0.0.1:$redis_port/0" \
        --mode all $redis_args >"$results/redis.md" 2>"$results/redis.err"; then
        echo "done"
    else
        failures=$((failures + 1))
        echo "FAILED: $(head -c 300 "$results/redis.err")"
        rm -f "$results/redis.md"
    fi
    kill -KILL "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
    rm -rf "$redis_dir"
fi

echo "== load runs took $((SECONDS - start)) s, $failures failed"

# ---- the page ----------------------------------------------------------------------------------

python3 benchmarks/report.py --results "$results" --doc "$doc" --template benchmarks/report_template.md
echo "== wrote $doc"
[ "$failures" -eq 0 ]
