#!/usr/bin/env bash
# benchmarks/micro/flavours.sh — the protocol micro benchmarks (masking above all) built four
# ways: g++ and clang++, each for generic x86-64 and with -march=native. How a compiler widens a
# loop depends on the target and on where the loop is inlined, so a change that is faster in one
# build can be slower in another (GCC 12 with -march=native once made 16 KiB echoes a third
# slower); every build must be at least as fast as the generic one. Before its benchmark, each
# build compiles and runs the masking unit tests ([mask] in tests/unit/codec_tests.cpp) with the
# same flags, so that every SIMD path the flags select is checked against the byte-wise
# definition. benchmarks/run.sh calls this; alone it takes about two minutes.
#
#   benchmarks/micro/flavours.sh [--out DIR] [--min-time S] [--filter REGEX] [--include DIR]
#                                [--baseline DIR] [--rounds N] [--core N]
#
#   --out DIR       where the builds and results go (default build/micro-flavours): one
#                   micro-FLAVOUR.json (Google Benchmark's JSON) and .txt per build
#   --min-time S    --benchmark_min_time for each benchmark (default 0.2)
#   --filter REGEX  --benchmark_filter (default: all)
#   --include DIR   the duplex headers to measure (default include/), e.g. an older tree from
#                   `git archive OLD include | tar -x -C /tmp/old` to compare before and after
#   --baseline DIR  also build the headers in DIR (an older include/, as for --include) and run
#                   both in turn, round after round, so that a busy minute hurts both alike;
#                   the table then shows before -> after for each build
#   --rounds N      runs of each benchmark binary (default 1); the table keeps each benchmark's
#                   best run, the one least disturbed by other work on the machine
#   --core N        pin the benchmarks to core N (default 0)
set -euo pipefail
cd "$(dirname "$0")/../.."

out=build/micro-flavours
min_time=0.2
filter=""
include=include
baseline=""
rounds=1
core=0
while (($#)); do
    case $1 in
    --out) out=$2 ;;
    --min-time) min_time=$2 ;;
    --filter) filter=$2 ;;
    --include) include=$2 ;;
    --baseline) baseline=$2 ;;
    --rounds) rounds=$2 ;;
    --core) core=$2 ;;
    *)
        sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
        exit 2
        ;;
    esac
    shift 2
done
mkdir -p "$out"
rm -f "$out"/micro-*.json "$out"/base-*.json # a failed build must leave no older result

# name|compiler|flags
flavours=(
    "gcc|g++|-O3"
    "gcc-native|g++|-O3 -march=native"
    "clang|clang++|-O3"
    "clang-native|clang++|-O3 -march=native"
)
common="-std=c++17 -DNDEBUG -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion -Werror"
pin=()
command -v taskset >/dev/null && pin=(taskset -c "$core")

if [ ! -f /usr/include/benchmark/benchmark.h ] && [ ! -f /usr/local/include/benchmark/benchmark.h ]; then
    echo "flavours: Google Benchmark not found (Debian: libbenchmark-dev)" >&2
    exit 1
fi
catch=""
[ -f /usr/include/catch2/catch.hpp ] && catch=yes

failures=0
built=()
for f in "${flavours[@]}"; do
    IFS='|' read -r name compiler flags <<<"$f"
    if ! command -v "$compiler" >/dev/null; then
        echo "== $name: skipped ($compiler is not installed)"
        continue
    fi
    echo "== $name: $compiler $flags"
    for variant in micro ${baseline:+base}; do
        headers=$include
        [ "$variant" = base ] && headers=$baseline
        if [ -n "$catch" ]; then
            # Catch2's main is the slow part to compile and does not depend on the flags.
            main_o=$out/catch-main-$compiler.o
            [ -f "$main_o" ] || $compiler -std=c++17 -O0 -Itests/unit -c tests/unit/main.cpp -o "$main_o"
            # shellcheck disable=SC2086 # flags are lists of words
            $compiler $flags $common -I"$headers" -Itests/unit tests/unit/codec_tests.cpp \
                "$main_o" -o "$out/mask-tests-$variant-$name"
            log=$out/mask-tests-$variant-$name.txt
            if ! "$out/mask-tests-$variant-$name" "[mask]" >"$log" 2>&1; then
                echo "   mask tests ($headers) FAILED:"
                tail -30 "$log"
                failures=$((failures + 1))
                continue
            fi
            echo "   mask tests ($headers): $(grep -E 'All tests passed|test cases' "$log" | tail -1)"
        fi
        # shellcheck disable=SC2086
        $compiler $flags $common -I"$headers" benchmarks/micro/protocol_bench.cpp \
            -o "$out/$variant-$name" -lbenchmark -lpthread
        built+=("$variant-$name")
    done
done

for round in $(seq "$rounds"); do
    for program in "${built[@]}"; do
        echo "== round $round/$rounds: $program"
        "${pin[@]}" "$out/$program" --benchmark_min_time="$min_time" \
            ${filter:+--benchmark_filter="$filter"} \
            --benchmark_out="$out/$program-r$round.json" --benchmark_out_format=json \
            >"$out/$program-r$round.txt"
    done
done

python3 benchmarks/report.py --flavours "$out"
[ "$failures" -eq 0 ]
