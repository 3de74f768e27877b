#!/usr/bin/env python3
"""Tests of the test harness itself (ctest test selftest.harness).

    harness_test.py --cmake CMAKE --ctest CTEST [--build-dir DIR]

1. scripts/ctest_summary.py, fed the JUnit file of a real ctest run over a throw-away project
   whose tests pass, fail, time out, skip (exit code and marker) or are disabled: skips are
   counted as skips, never as passes; under CI=true a required test that skipped or was never
   registered fails the flavour; a required test that passed does not.
2. The Catch2 skip path: a test that prints DUPLEX_SKIP's marker is skipped under ctest, and
   exit code 77 without the marker (Catch2 v2 exits with its count of failed assertions) is a
   failure.
3. With --build-dir: every test registered in that build has a TIMEOUT, so no test can hang CI.
4. With --unit-tests: DUPLEX_SKIP (tests/unit/catch.hpp) in a real Catch2 executable prints the
   marker and exits with 77 when DUPLEX_TEST_SKIP is set, before the rest of the test runs.
5. No test source asserts an upper bound on a duration ("CHECK(elapsed < 400ms)"): speed
   belongs in benchmarks, and such a check fails on a slow machine, not on a bug.
6. No handler or completion callback in tests/integration asserts: handlers may run on io
   threads (Catch2 is not thread-safe; a failed REQUIRE there ends in std::terminate), and one
   that never runs passes in silence. They record what they see; the test thread asserts.
"""
import argparse
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import ctest_summary  # noqa: E402

ARGS = None

# A project whose tests cover every way a ctest test can end. The Catch2 properties are the
# ones tests/CMakeLists.txt gives discovered tests (SKIP_REGULAR_EXPRESSION on the marker).
PROJECT = textwrap.dedent(r"""
    cmake_minimum_required(VERSION 3.20)
    project(harness_fixture NONE)
    enable_testing()
    function(shell name script)
      add_test(NAME "${name}" COMMAND sh -c "${script}")
      set_tests_properties("${name}" PROPERTIES TIMEOUT 20)
    endfunction()
    shell(ok "exit 0")
    shell(broken "echo broken; exit 1")
    shell(hangs "sleep 30")
    set_tests_properties(hangs PROPERTIES TIMEOUT 1)
    shell(interop.server-python-ws "echo 'SKIPPED: python3 cannot import websockets'; exit 77")
    set_tests_properties(interop.server-python-ws PROPERTIES SKIP_RETURN_CODE 77)
    shell(interop.server-node-ws "exit 0")
    shell(optional.peer "echo 'SKIPPED: no such peer'; exit 77")
    set_tests_properties(optional.peer PROPERTIES SKIP_RETURN_CODE 77)
    shell("awaitable: not built" "exit 1")
    set_tests_properties("awaitable: not built" PROPERTIES DISABLED TRUE)
    shell("integration: ipv6" "echo; echo 'DUPLEX_TEST_SKIPPED: no IPv6 loopback'; exit 77")
    shell("integration: 77 failed assertions" "echo '77 assertions failed'; exit 77")
    set_tests_properties("integration: ipv6" "integration: 77 failed assertions" PROPERTIES
      SKIP_REGULAR_EXPRESSION "DUPLEX_TEST_SKIPPED: ")
    shell(setup "exit 1")
    set_tests_properties(setup PROPERTIES FIXTURES_SETUP fx)
    shell(needs-setup "exit 0")
    set_tests_properties(needs-setup PROPERTIES FIXTURES_REQUIRED fx)
""")

REQUIRED = textwrap.dedent(r"""
    # a comment, then the fixture's requirements
    fake   ^interop\.server-python-ws$
    fake   ^interop\.server-node-ws$
    fake   ^conformance\.server$
    other  ^ok$
""")


class Fixture:
    """Configures and runs the throw-away project once; keeps its JUnit file."""

    dir = None
    junit = None
    status = None

    @classmethod
    def get(cls):
        if cls.dir is None:
            cls.dir = tempfile.mkdtemp(prefix="duplex-harness-")
            with open(os.path.join(cls.dir, "CMakeLists.txt"), "w") as f:
                f.write(PROJECT)
            with open(os.path.join(cls.dir, "required.txt"), "w") as f:
                f.write(REQUIRED)
            build = os.path.join(cls.dir, "build")
            subprocess.run([ARGS.cmake, "-S", cls.dir, "-B", build], check=True,
                           stdout=subprocess.DEVNULL)
            cls.junit = os.path.join(cls.dir, "junit.xml")
            cls.status = subprocess.run(
                [ARGS.ctest, "--test-dir", build, "-j4", "--output-junit", cls.junit],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
        return cls


def summary(ci, required=True, junit=None, status=None, preset="fake"):
    fx = Fixture.get()
    out = io.StringIO()
    counts = ctest_summary.summarise(
        preset, junit or fx.junit, os.path.join(fx.dir, "required.txt") if required else None,
        fx.status if status is None else status, ci=ci, out=out)
    return counts, out.getvalue()


class CountsTest(unittest.TestCase):
    def test_outside_ci_skips_are_skips_not_passes(self):
        (passed, failed, skipped), text = summary(ci=False)
        # passed: ok, interop.server-node-ws; failed: broken, hangs, setup, needs-setup and
        # the 77 without the marker; skipped: python interop, optional, awaitable, ipv6.
        self.assertEqual((passed, failed, skipped), (2, 5, 4), text)
        self.assertRegex(text, r"skipped: interop\.server-python-ws: SKIPPED: python3 cannot")
        self.assertRegex(text, r"\(required in CI\)")
        self.assertRegex(text, r"skipped: awaitable: not built: DISABLED")
        self.assertRegex(text, r"skipped: integration: ipv6: DUPLEX_TEST_SKIPPED: no IPv6")
        self.assertRegex(text, r"failed: integration: 77 failed assertions")
        self.assertRegex(text, r"failed: needs-setup: not run: Fixture dependency failed")
        self.assertRegex(text, r"note: required test /\^conformance\\\.server\$/ is not registered")
        self.assertTrue(text.rstrip().endswith("fake: 2 passed, 5 failed, 4 skipped"), text)

    def test_ci_fails_a_skipped_or_missing_required_test(self):
        (passed, failed, skipped), text = summary(ci=True)
        # The skipped python interop case and the missing conformance.server become failures.
        self.assertEqual((passed, failed, skipped), (2, 7, 3), text)
        self.assertRegex(text, r"failed: interop\.server-python-ws: required in CI, but skipped")
        self.assertRegex(text, r"failed: required test /\^conformance\\\.server\$/ is not regis")

    def test_ci_with_every_required_test_passing_adds_no_failure(self):
        (passed, failed, skipped), text = summary(ci=True, preset="other")
        self.assertEqual((passed, failed, skipped), (2, 5, 4), text)

    def test_ci_environment_variable(self):
        saved = os.environ.get("CI")
        try:
            os.environ["CI"] = "true"
            self.assertTrue(ctest_summary.in_ci())
            os.environ["CI"] = "false"
            self.assertFalse(ctest_summary.in_ci())
        finally:
            if saved is None:
                os.environ.pop("CI", None)
            else:
                os.environ["CI"] = saved

    def test_no_results_is_a_failure(self):
        (passed, failed, skipped), text = summary(ci=False, junit="/nonexistent/junit.xml")
        self.assertEqual((passed, failed, skipped), (0, 1, 0), text)
        with tempfile.NamedTemporaryFile("w", suffix=".xml", delete=False) as f:
            f.write('<?xml version="1.0"?><testsuite tests="0"></testsuite>')
        try:
            (passed, failed, skipped), text = summary(ci=False, required=False, junit=f.name,
                                                      status=0)
            self.assertEqual((passed, failed, skipped), (0, 1, 0), text)
            self.assertIn("ran no tests", text)
        finally:
            os.unlink(f.name)

    def test_a_failing_ctest_status_is_never_lost(self):
        with tempfile.NamedTemporaryFile("w", suffix=".xml", delete=False) as f:
            f.write('<?xml version="1.0"?><testsuite tests="1">'
                    '<testcase name="ok" status="run"/></testsuite>')
        try:
            (passed, failed, skipped), text = summary(ci=False, required=False, junit=f.name,
                                                      status=8)
            self.assertEqual((passed, failed, skipped), (1, 1, 0), text)
        finally:
            os.unlink(f.name)

    def test_the_command_line_exit_status(self):
        fx = Fixture.get()
        script = os.path.join(ROOT, "scripts", "ctest_summary.py")
        env = dict(os.environ, CI="true")
        run = subprocess.run(
            [sys.executable, script, "--preset", "other", "--junit", fx.junit],
            env=env, capture_output=True, text=True)
        self.assertEqual(run.returncode, 1, run.stdout)  # the fixture has real failures
        self.assertRegex(run.stdout.splitlines()[-1], r"^other: \d+ passed, \d+ failed, \d+ skipped$")


class TimeoutsTest(unittest.TestCase):
    def test_every_registered_test_has_a_timeout(self):
        if not ARGS.build_dir:
            self.skipTest("no --build-dir")
        listing = subprocess.run([ARGS.ctest, "--show-only=json-v1"], cwd=ARGS.build_dir,
                                 capture_output=True, text=True, check=True).stdout
        tests = json.loads(listing)["tests"]
        self.assertTrue(tests, "no tests registered")
        without = []
        for test in tests:
            props = {p["name"]: p["value"] for p in test.get("properties", [])}
            timeout = props.get("TIMEOUT")
            if timeout is None or not 0 < float(timeout) <= 900:
                without.append(test["name"])
        self.assertEqual(without, [], "tests without a TIMEOUT (or over 900 s)")

    def test_every_catch2_test_fails_when_its_name_selects_nothing(self):
        if not ARGS.build_dir:
            self.skipTest("no --build-dir")
        listing = subprocess.run([ARGS.ctest, "--show-only=json-v1"], cwd=ARGS.build_dir,
                                 capture_output=True, text=True, check=True).stdout
        catch_tests = [t for t in json.loads(listing)["tests"]
                       if os.path.basename(t.get("command", [""])[0]).startswith("duplex_")
                       and os.path.basename(t["command"][0]).endswith("_tests")]
        self.assertTrue(catch_tests, "no Catch2 tests registered")
        unguarded = [t["name"] for t in catch_tests if "NoTests" not in t["command"]]
        self.assertEqual(unguarded, [], "Catch2 tests run without --warn NoTests")
        if ARGS.unit_tests:
            run = subprocess.run([ARGS.unit_tests, "no test has this name", "--warn", "NoTests"],
                                 capture_output=True, text=True, timeout=60)
            self.assertNotEqual(run.returncode, 0, run.stdout)


class SkipTest(unittest.TestCase):
    def test_duplex_skip_ends_the_process_as_skipped_under_ctest(self):
        if not ARGS.unit_tests:
            self.skipTest("no --unit-tests")
        env = dict(os.environ, DUPLEX_TEST_SKIP="1")
        run = subprocess.run([ARGS.unit_tests, "[harness-skip]"], env=env, capture_output=True,
                             text=True, timeout=60)
        self.assertEqual(run.returncode, 77, run.stdout + run.stderr)
        self.assertIn("DUPLEX_TEST_SKIPPED: the harness's own check", run.stdout)
        self.assertNotIn("DUPLEX_SKIP returned", run.stdout)


class NoDurationAssertionsTest(unittest.TestCase):
    # CHECK/REQUIRE comparing something with "<" or "<=" against a duration literal.
    UPPER_BOUND = re.compile(r"\b(CHECK|REQUIRE)\w*\(.*<=?\s*(\d+\s*\*\s*)?\d+(ns|us|ms|s|min)\b")

    def test_no_test_asserts_an_upper_bound_on_a_duration(self):
        found = []
        for folder, _, files in os.walk(os.path.join(ROOT, "tests")):
            for name in files:
                if not name.endswith((".cpp", ".hpp")):
                    continue
                path = os.path.join(folder, name)
                with open(path, encoding="utf-8") as f:
                    for number, line in enumerate(f, 1):
                        if self.UPPER_BOUND.search(line):
                            found.append(f"{os.path.relpath(path, ROOT)}:{number}: {line.strip()}")
        self.assertEqual(found, [])

    def test_the_pattern_finds_what_it_is_for(self):
        for line in ["CHECK(rec->closed_at - t0 < 400ms);",
                     "CHECK(std::chrono::steady_clock::now() - start < 2s);",
                     "REQUIRE(elapsed <= 2 * 250ms);"]:
            self.assertRegex(line, self.UPPER_BOUND)
        for line in ["CHECK(rec->closed_at - t0 >= 60ms);", "REQUIRE(h.run_until(done, 10s));",
                     "CHECK(count < 10);"]:
            self.assertNotRegex(line, self.UPPER_BOUND)


class NoAssertionsInHandlersTest(unittest.TestCase):
    # A lambda given to a handler (".on_message = [") or to an async_* call, up to its body.
    HANDLER = re.compile(
        r"(\.on_\w+\s*=\s*|\basync_\w+(?:<[^>]*>)?\((?:[^;{}]|{}|\n)*?)\[[^\]]*\]\s*\(")
    ASSERTION = re.compile(r"\b(REQUIRE|CHECK|FAIL|SUCCEED|WARN)\w*\s*\(")

    @classmethod
    def assertions_in_handlers(cls, text):
        """[(line, assertion)] for each assertion inside a handler lambda's body."""
        found = []
        for m in cls.HANDLER.finditer(text):
            start = text.find("{", m.end())
            end_of_statement = text.find(";", m.end())
            if start < 0 or (0 <= end_of_statement < start):
                continue  # no body of its own before the statement ends
            depth = 0
            for k in range(start, len(text)):
                depth += {"{": 1, "}": -1}.get(text[k], 0)
                if depth == 0:
                    body = text[start:k + 1]
                    for a in cls.ASSERTION.finditer(body):
                        line = text.count("\n", 0, start + a.start()) + 1
                        found.append((line, body[a.start():].split("\n", 1)[0].strip()))
                    break
        return found

    def test_no_handler_in_the_integration_tests_asserts(self):
        found = []
        folder = os.path.join(ROOT, "tests", "integration")
        for name in sorted(os.listdir(folder)):
            if name.endswith(".cpp"):
                with open(os.path.join(folder, name), encoding="utf-8") as f:
                    found += [f"{name}:{line}: {what}"
                              for line, what in self.assertions_in_handlers(f.read())]
        self.assertEqual(found, [], "record in the handler, assert on the test thread")

    def test_the_scan_finds_what_it_is_for(self):
        flagged = textwrap.dedent("""
            server.handlers().on_upgrade = [](const duplex::request_info& req, user& u) {
                CHECK(req.path() == "/room");
                return duplex::upgrade_decision::accept();
            };
            duplex::async_connect<duplex::transport::tcp>(
                io.get_executor(), url, {},
                [&](std::error_code ec, std::shared_ptr<tcp_connection> c) {
                    REQUIRE_FALSE(ec);
                });
        """)
        self.assertEqual([what for _, what in self.assertions_in_handlers(flagged)],
                         ['CHECK(req.path() == "/room");', "REQUIRE_FALSE(ec);"])
        clean = textwrap.dedent("""
            server.handlers().on_close = [&](const auto&, const duplex::close_info& info) {
                closed.set_value(info);
            };
            c->async_read([&](std::error_code ec, duplex::message m) { got = ec; });
            CHECK(get_within(closed.get_future()).code == 1000);
        """)
        self.assertEqual(self.assertions_in_handlers(clean), [])


def main():
    global ARGS
    parser = argparse.ArgumentParser()
    parser.add_argument("--cmake", default="cmake")
    parser.add_argument("--ctest", default="ctest")
    parser.add_argument("--build-dir")
    parser.add_argument("--unit-tests")
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()
