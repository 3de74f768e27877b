#!/usr/bin/env python3
"""Compiles every C++ code block of README.md and docs/*.md, so that the docs cannot drift.

Each ```cpp block becomes part of one generated translation unit, in a namespace of its own:
its #include lines go to the top; a block with `int main` or with declarations only (a class,
a function) stays at namespace scope (main renamed); any other block is the body of a function.
Two HTML comments on the line(s) just before a fence adjust a block (they do not show when the
page is rendered):

  <!-- doc-test: skip (why) -->      a fragment that cannot compile alone: not compiled
  <!-- doc-test: prelude CODE -->    CODE is put before the block in its scope: the names a
                                     fragment uses without declaring them

usage: check_code_blocks.py --compiler CXX --out FILE.cpp [--flag F]... PAGE.md...
"""
import argparse
import re
import subprocess
import sys

FENCE = re.compile(r"^```cpp[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
MARK = re.compile(r"<!--\s*doc-test:\s*(skip|prelude)\b(.*?)-->", re.S)
# A line at column 0 that only namespace scope allows: a class, a template, a function.
DECLARATION = re.compile(r"^(class |struct |template|inline |[\w:<>]+ [\w:]+\([^;]*\)\s*\{)")


def blocks(path):
    text = open(path, encoding="utf-8").read()
    for m in FENCE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        before = text[: m.start()].rstrip().split("\n")
        marks = []
        # The comments directly above the fence (no blank line in between).
        while before and before[-1].strip().startswith("<!--") and "doc-test" in before[-1]:
            marks.append(before.pop())
        skip = False
        prelude = []
        for raw in marks:
            for kind, arg in MARK.findall(raw):
                if kind == "skip":
                    skip = True
                else:
                    prelude.append(arg.strip())
        yield path, line, m.group(1), skip, "\n".join(reversed(prelude))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--compiler", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--flag", action="append", default=[])
    parser.add_argument("pages", nargs="+")
    args = parser.parse_args()

    includes = ["#include <chrono>", "#include <cstdio>", "#include <functional>",
                "#include <memory>", "#include <string>", "#include <string_view>",
                "#include <thread>", "#include <vector>"]
    bodies = []
    compiled = skipped = 0
    for page in args.pages:
        for path, line, code, skip, prelude in blocks(page):
            if skip:
                skipped += 1
                continue
            compiled += 1
            rest = []
            for text_line in code.split("\n"):
                if text_line.startswith("#include"):
                    if text_line not in includes:
                        includes.append(text_line)
                else:
                    rest.append(text_line)
            body = "\n".join(rest)
            name = f"doc_block_{compiled}"
            where = f'#line {line + 1} "{path}"'
            at_namespace = "int main" in body or any(DECLARATION.match(l) for l in rest)
            body = re.sub(r"\bint main\s*\(", "int main_of_block(", body)
            if at_namespace:
                bodies.append(f"namespace {name} {{\n{prelude}\n{where}\n{body}\n}}")
            else:
                bodies.append(f"namespace {name} {{\ninline void run() {{\n{prelude}\n{where}\n"
                              f"{body}\n}}\n}}")
    source = "\n".join(includes) + "\n\n" + "\n\n".join(bodies) + "\nint main() {}\n"
    with open(args.out, "w", encoding="utf-8") as out:
        out.write(source)
    # A block's main, renamed, no longer returns 0 implicitly.
    command = [args.compiler, "-fsyntax-only", "-Wno-return-type", *args.flag, args.out]
    result = subprocess.run(command)
    print(f"{compiled} code blocks compiled, {skipped} marked doc-test: skip")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
