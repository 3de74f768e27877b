#!/usr/bin/env python3
"""Counts one flavour's ctest results from its JUnit file, honestly: passed, failed, skipped.

    ctest_summary.py --preset NAME --junit FILE [--required FILE] [--ctest-status N]

ctest's own summary line ("N tests failed out of M") counts a test that reported itself skipped
(SKIP_RETURN_CODE) as neither failed nor separate, so "M - N" would call it passed. This reads
`ctest --output-junit` instead and classifies every test:

  passed   it ran and succeeded
  failed   it failed, timed out, or ctest could not run it (missing executable, failed fixture)
  skipped  it reported itself skipped (SKIP_RETURN_CODE, SKIP_REGULAR_EXPRESSION) or is DISABLED

Under CI (environment CI=true), every test that the --required file names for this flavour
must have passed: a required test that skipped, or that configure never registered (a
dependency was missing), is a failure. Outside CI they are listed, not failed, so a developer
without Chromium can still run the rest.

The last line is "PRESET: P passed, F failed, S skipped"; the exit status is 1 if anything
failed (including a non-zero --ctest-status that the tests do not explain), else 0.
"""
import argparse
import os
import re
import sys
import xml.etree.ElementTree as ET

# Why ctest did not run a test, as written in the JUnit <skipped message=...>: only these are
# skips the test chose. Anything else that did not run ("Fixture dependency failed", "Unable to
# find executable") is a failure, as ctest itself counts it.
SKIP_MESSAGES = ("SKIP_RETURN_CODE", "SKIP_REGULAR_EXPRESSION")


def in_ci():
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def read_required(path, preset):
    """The regexes that `path` requires for `preset`: lines "PRESET REGEX"; # starts a comment line."""
    required = []
    if not path:
        return required
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split(None, 1)
            if len(parts) != 2:
                raise SystemExit(f"{path}:{number}: expected 'PRESET REGEX', got {line!r}")
            if parts[0] == preset:
                required.append(re.compile(parts[1]))
    return required


def skip_reason(case):
    """The line in a skipped test's output that says why, or ctest's own word for it."""
    out = case.findtext("system-out") or ""
    for line in out.splitlines():
        if "skip" in line.lower() or "not built" in line.lower():
            return line.strip()[:200]
    skipped = case.find("skipped")
    if skipped is not None:
        return skipped.get("message", "")
    return out.strip()[:200] or case.get("status", "")


def classify(junit_path):
    """[(name, outcome, detail)] with outcome one of passed, failed, skipped."""
    root = ET.parse(junit_path).getroot()
    results = []
    for case in root.iter("testcase"):
        name = case.get("name", "")
        status = case.get("status", "")
        if status == "run":
            results.append((name, "passed", ""))
        elif status == "disabled":
            results.append((name, "skipped", "DISABLED: " + skip_reason(case)))
        elif status == "notrun":
            skipped = case.find("skipped")
            message = skipped.get("message", "") if skipped is not None else ""
            if message.startswith(SKIP_MESSAGES):
                results.append((name, "skipped", skip_reason(case)))
            else:
                results.append((name, "failed", f"not run: {message or 'unknown reason'}"))
        else:  # "fail", and anything this script does not know: never a pass
            results.append((name, "failed", status))
    return results


def summarise(preset, junit_path, required_path=None, ctest_status=0, ci=None, out=sys.stdout):
    """Prints the report; returns (passed, failed, skipped)."""
    ci = in_ci() if ci is None else ci
    problems = []
    try:
        results = classify(junit_path)
    except (OSError, ET.ParseError) as e:
        results = []
        problems.append(f"no readable ctest results in {junit_path}: {e}")
    if not results and not problems:
        problems.append("ctest ran no tests")

    required = read_required(required_path, preset)
    outcome = {name: (state, detail) for name, state, detail in results}
    for pattern in required:
        matched = [name for name in outcome if pattern.search(name)]
        if not matched:
            what = (f"required test /{pattern.pattern}/ is not registered: configure did not "
                    "find what it needs (see its output above)")
            if ci:
                problems.append(what)
            else:
                print(f"{preset}: note: {what}; CI fails on this", file=out)
        for name in matched:
            state, detail = outcome[name]
            if state == "skipped":
                if ci:
                    outcome[name] = ("failed", f"required in CI, but skipped: {detail}")
                else:
                    outcome[name] = (state, f"{detail} (required in CI)")

    counts = {"passed": 0, "failed": 0, "skipped": 0}
    for name, (state, detail) in outcome.items():
        counts[state] += 1
        if state != "passed":
            print(f"{preset}: {state}: {name}: {detail}", file=out)
    for problem in problems:
        print(f"{preset}: failed: {problem}", file=out)
    counts["failed"] += len(problems)
    if ctest_status != 0 and counts["failed"] == 0:
        print(f"{preset}: failed: ctest exited with {ctest_status} although no test failed",
              file=out)
        counts["failed"] += 1
    print(f"{preset}: {counts['passed']} passed, {counts['failed']} failed, "
          f"{counts['skipped']} skipped", file=out)
    return counts["passed"], counts["failed"], counts["skipped"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", required=True)
    parser.add_argument("--junit", required=True)
    parser.add_argument("--required")
    parser.add_argument("--ctest-status", type=int, default=0)
    args = parser.parse_args(argv)
    _, failed, _ = summarise(args.preset, args.junit, args.required, args.ctest_status)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
