#!/usr/bin/env bash
# Builds and runs the main example: today the in-memory protocol demo, which shows a client and
# a server performing the opening handshake, exchanging messages and closing, byte by byte.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cmake >/dev/null && command -v ninja >/dev/null || {
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq cmake ninja-build g++
}
cmake --preset release -DDUPLEX_BUILD_TESTS=OFF -DDUPLEX_BUILD_BENCHMARKS=OFF -DDUPLEX_BUILD_FUZZ=OFF >/dev/null
cmake --build --preset release --target protocol_demo -j "$(nproc)"
exec build/release/examples/protocol_demo
