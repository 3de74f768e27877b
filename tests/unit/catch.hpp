// Lets the tests build against Catch2 v2 (Debian) and v3 (vcpkg, Conan) alike.
#pragma once
#if defined(DUPLEX_CATCH_V3) || __has_include(<catch2/catch_test_macros.hpp>)
#include <catch2/catch_test_macros.hpp>
#include <catch2/generators/catch_generators.hpp>
#else
#include <catch2/catch.hpp>
#endif

#include <cstdio>
#include <cstdlib>

namespace duplex_test {

// Under ctest (tests/CMakeLists.txt sets DUPLEX_TEST_SKIP for every Catch2 test and maps the
// marker to "skipped"), ends the process with the marker and why. Catch2 v2 cannot report a
// skip itself, and a test that returns early would be counted as passed.
inline void end_as_skipped_under_ctest(const char* why) {
    const char* watched = std::getenv("DUPLEX_TEST_SKIP");
    if (watched == nullptr || *watched == '\0') return;
    std::printf("\nDUPLEX_TEST_SKIPPED: %s\n", why);
    std::fflush(stdout);
    std::_Exit(77); // not exit(): io threads may still run, and nothing may be reported as run
}

} // namespace duplex_test

// Reports the current test as skipped (call it before the test asserts anything). Outside
// ctest, Catch2 v3 skips the test; v2 warns and returns, so a whole-executable run goes on.
#if defined(SKIP)
#define DUPLEX_SKIP(why)                                                                           \
    do {                                                                                           \
        ::duplex_test::end_as_skipped_under_ctest(why);                                            \
        SKIP(why);                                                                                 \
    } while (false)
#else
#define DUPLEX_SKIP(why)                                                                           \
    do {                                                                                           \
        ::duplex_test::end_as_skipped_under_ctest(why);                                            \
        WARN("skipped: " << why);                                                                  \
        return;                                                                                    \
    } while (false)
#endif
