// The test harness's skip, checked by the selftest.harness ctest test (tests/selftest): run
// with DUPLEX_TEST_SKIP set, DUPLEX_SKIP must end the process with the marker ctest maps to
// "skipped" and exit code 77, before anything after it runs. Hidden ([.]), so that neither
// ctest's discovery nor a plain run of the executable picks it up.
#include "catch.hpp"

TEST_CASE("DUPLEX_SKIP ends a test as skipped under ctest", "[.][harness-skip]") {
    DUPLEX_SKIP("the harness's own check");
    FAIL("DUPLEX_SKIP returned into the test");
}
