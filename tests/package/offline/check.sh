#!/usr/bin/env bash
# The vcpkg port and the Conan recipe, run with the real tools and no network: asio, openssl
# and zlib come from the stand-in packages beside this script, which repackage the system's
# (Debian: libasio-dev, libssl-dev, zlib1g-dev). Not part of CI: neither tool is a Debian
# package. Runs each tool found (conan on PATH; vcpkg on PATH or in VCPKG_ROOT) and exits
# non-zero if any check fails. Everything it writes goes to a scratch directory.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
status=0
ran=0

check() { # check [--echo] <description> <command...>: the command must succeed (and, with
    # --echo, print test_package's echo)
    local want_echo=0
    [ "$1" = --echo ] && { want_echo=1; shift; }
    local what=$1
    shift
    if ! "$@" >"$scratch/log" 2>&1; then
        echo "FAILED: $what"
        tail -n 40 "$scratch/log"
        status=1
    elif [ $want_echo -eq 1 ] && ! grep -q "echo: hello from a packaged duplex" "$scratch/log"; then
        echo "FAILED (no echo): $what"
        tail -n 40 "$scratch/log"
        status=1
    else
        echo "ok: $what"
    fi
}
refused() { # refused <description> <regex> <command...>: must fail, saying <regex> somewhere
    local what=$1 pattern=$2
    shift 2
    if "$@" >"$scratch/log" 2>&1; then
        echo "FAILED (accepted): $what"
        status=1
    elif grep -rqE "$pattern" "$scratch/log" ${extra_logs:-}; then
        echo "ok: $what"
    else
        echo "FAILED (no '$pattern'): $what"
        tail -n 40 "$scratch/log"
        status=1
    fi
}

if command -v conan >/dev/null; then
    ran=1
    export CONAN_HOME="$scratch/conan"
    conan profile detect >/dev/null 2>&1
    conan remote disable conancenter >/dev/null 2>&1
    for p in asio openssl zlib; do check "conan: stand-in $p" conan create "$here/conan/$p"; done
    check --echo "conan create -o duplex/*:with_tls=True (test_package: echo)" \
        conan create "$root" -o "duplex/*:with_tls=True"
    check --echo "conan create -o duplex/*:with_tls=False (test_package: echo)" \
        conan create "$root" -o "duplex/*:with_tls=False"
    check --echo "conan create -o duplex/*:with_deflate=True (test_package: echo, deflate)" \
        conan create "$root" -o "duplex/*:with_deflate=True"
else
    echo "conan not found: recipe not checked"
fi

vcpkg=$(command -v vcpkg || { [ -n "${VCPKG_ROOT:-}" ] && echo "$VCPKG_ROOT/vcpkg"; } || true)
if [ -n "$vcpkg" ] && [ -x "$vcpkg" ]; then
    ran=1
    export VCPKG_FORCE_SYSTEM_BINARIES=1 VCPKG_DISABLE_METRICS=1
    installed="$scratch/vcpkg_installed"
    options=(--overlay-ports="$root/ports" --overlay-ports="$here/vcpkg" --no-binarycaching
        --x-install-root="$installed" --x-buildtrees-root="$scratch/buildtrees"
        --x-packages-root="$scratch/packages")
    check "vcpkg install duplex[tls] --overlay-ports=ports" "$vcpkg" install "duplex[tls]" "${options[@]}"
    toolchain="$(dirname "$vcpkg")/scripts/buildsystems/vcpkg.cmake"
    [ -n "${VCPKG_ROOT:-}" ] && toolchain="$VCPKG_ROOT/scripts/buildsystems/vcpkg.cmake"
    check --echo "a consumer of the vcpkg package (find_package COMPONENTS tls): build and echo" bash -c "
        cmake -S '$root/tests/package/consumer' -B '$scratch/consumer' -DMODE=tls \
            -DCMAKE_TOOLCHAIN_FILE='$toolchain' -DVCPKG_INSTALLED_DIR='$installed' \
            -DEXPECTED_PREFIX='$installed' \
            -DCONSUMER_SOURCE='$root/test_package/test_package.cpp' &&
        cmake --build '$scratch/consumer' && '$scratch/consumer/duplex_consumer'"
    check "vcpkg remove duplex" "$vcpkg" remove duplex "${options[@]}"
    check "vcpkg install duplex[tls,deflate] --overlay-ports=ports" \
        "$vcpkg" install "duplex[tls,deflate]" "${options[@]}"
else
    echo "vcpkg not found: port not checked"
fi

[ "$ran" -eq 1 ] || { echo "neither conan nor vcpkg found"; exit 1; }
exit $status
