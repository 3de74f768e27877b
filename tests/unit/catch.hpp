// Lets the tests build against Catch2 v2 (Debian) and v3 (vcpkg, Conan) alike.
#pragma once
#if defined(DUPLEX_CATCH_V3) || __has_include(<catch2/catch_test_macros.hpp>)
#include <catch2/catch_test_macros.hpp>
#include <catch2/generators/catch_generators.hpp>
#else
#include <catch2/catch.hpp>
#endif
