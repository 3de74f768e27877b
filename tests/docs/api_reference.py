#!/usr/bin/env python3
"""Checks docs/api.md against the public headers, so that the API reference cannot drift.

The public API is what include/duplex/*.hpp, transport/*.hpp and protocol/*.hpp declare
outside `detail` namespaces and outside private or protected sections: types, their public
members, the defaults of their fields, enumerators and free functions. detail/ is read only
to see the public members a policy inherits from a detail base (transport::tcp's from
detail::socket_transport), never documented for itself: implementation may move there freely.

docs/api.md is written for people: a section per header (`## \u0060duplex/x.hpp\u0060`), a
subsection per type (`### \u0060name\u0060`, nested types as `outer::inner`) with a line
of purpose, and then what the check compares with the headers:

  | field | default | ... |      one row per field: `name`, then `default` (— for none)
  Members: `f()`, `g()`.         member functions and member types, by name
  Values: `a`, `b`.              enumerators
  Functions: `f()`, `g()`.       (under `### Functions`) free functions of the header

Anything the headers declare and the page does not list fails the check, as does anything the
page lists that the headers do not declare, and a default that differs from the initializer
(compared with white space removed). Prose is free. Before it passes, the check makes sure
it can fail: the page with a field row dropped, a default changed or a member invented must
each be caught.

To start a section for a new header, `--skeleton` prints the page the headers imply, without
the prose.

usage: api_reference.py [--root DIR] [--page docs/api.md]           check (exit 1 on drift)
       api_reference.py [--root DIR] --skeleton                      print a page to start from
"""
import argparse
import os
import re
import sys

KEYWORDS_BEFORE_PAREN = {"decltype", "alignas", "noexcept", "sizeof", "alignof", "requires",
                         "static_assert", "__attribute__"}


# ---------------------------------------------------------------------------------------------
# Reading C++ declarations (enough of C++ for headers written in this project's style).

TOKEN = re.compile(r"""
    (?P<string>"(?:\\.|[^"\\])*")
  | (?P<char>'(?:\\.|[^'\\])*')
  | (?P<ident>[A-Za-z_]\w*)
  | (?P<number>\d[\w.']*)
  | (?P<punct>::|->|>>=|<<=|==|!=|<=|>=|&&|\|\||<<|\.\.\.|[{}()\[\];:,<>=&*+\-/%!~^|?.#])
""", re.X)


def strip_comments_and_preprocessor(text):
    out = []
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            i = n if j < 0 else j + 2
            out.append(" ")
        elif c == '"' or c == "'":
            m = TOKEN.match(text, i)
            tok = m.group(0) if m else c
            out.append(tok)
            i += len(tok)
        elif c == "#" and text[text.rfind("\n", 0, i) + 1:i].strip() == "":
            # A preprocessor line, with its continuations.
            j = i
            while True:
                k = text.find("\n", j)
                if k < 0:
                    j = n
                    break
                if text[k - 1] == "\\":
                    j = k + 1
                    continue
                j = k
                break
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def tokenize(text):
    text = strip_comments_and_preprocessor(text)
    return [m.group(0) for m in TOKEN.finditer(text)]


def matching(tokens, i, open_, close):
    """Index just past the token closing tokens[i] (which is `open_`)."""
    depth = 0
    while i < len(tokens):
        t = tokens[i]
        if t == open_:
            depth += 1
        elif t == close:
            depth -= 1
            if depth == 0:
                return i + 1
        elif open_ == "<" and t == ">>":
            depth -= 2
            if depth <= 0:
                return i + 1
        i += 1
    return i


def skip_template_prefix(head):
    while head and head[0] == "template" and len(head) > 1 and head[1] == "<":
        head = head[matching(head, 1, "<", ">"):]
    return head


def strip_attributes(head):
    out = []
    i = 0
    while i < len(head):
        if head[i] == "[" and i + 1 < len(head) and head[i + 1] == "[":
            i = matching(head, i, "[", "]")
            continue
        out.append(head[i])
        i += 1
    return out


def join(tokens):
    """Tokens back to text, spaced as clang-format would in the common cases."""
    out = ""
    prev = ""
    for t in tokens:
        word = re.match(r"[\w\"']", t) is not None
        prev_word = re.match(r"[\w\"')\]]", prev) is not None if prev else False
        if not out:
            out = t
        elif t in ("-", "+", "*", "&") and (prev in ("(", ",", "=", "{", "<<", "return") or
                                            not prev):
            out += (" " if prev in ("=", ",", "<<", "return") else "") + t
            prev = "(" if t in ("-", "+") else t
            continue
        elif t in ("<<", ">>", "*", "+", "-", "|", "&&", "||", "?", "=", "==", "!=") or \
                prev in ("<<", ">>", "*", "+", "-", "|", "&&", "||", "?", "=", "==", "!=", ","):
            out += " " + t
        elif word and prev_word and prev not in ("(", "<", "[", "{"):
            out += " " + t
        else:
            out += t
        prev = t
    return out


def merge_operators(head):
    """`operator` and the tokens naming it as one token: operator=, operator(), operator bool."""
    out = []
    i = 0
    while i < len(head):
        if head[i] == "operator" and i + 1 < len(head):
            if head[i + 1] == "(" and i + 2 < len(head) and head[i + 2] == ")":
                out.append("operator()")
                i += 3
                continue
            j = i + 1
            name = ""
            while j < len(head) and head[j] != "(":
                name += (" " if re.match(r"\w", head[j]) and name else "") + head[j]
                j += 1
            out.append("operator" + (" " if re.match(r"\w", name) else "") + name)
            i = j
            continue
        out.append(head[i])
        i += 1
    return out


class Type:
    def __init__(self, name, kind, header, namespace):
        self.name = name            # qualified below duplex::, e.g. "server::handlers_type"
        self.kind = kind            # struct, class, enum
        self.header = header
        self.namespace = namespace  # e.g. ["duplex", "transport"]
        self.fields = {}            # name -> default text or None
        self.members = set()        # member functions and member types
        self.member_types = set()   # the member types among them
        self.values = []            # enumerators
        self.bases = []             # base clauses, as text


class Header:
    def __init__(self, path):
        self.path = path
        self.types = {}
        self.functions = set()
        self.constants = set()      # namespace-scope constexpr variables (listed as functions)


def function_name(head):
    """The declarator name of a function head, or None if it is not a function."""
    head = merge_operators(head)
    depth = 0
    i = 0
    while i < len(head):
        t = head[i]
        if t in ("{", "[", "<"):
            depth += 1
        elif t in ("}", "]", ">"):
            depth -= 1
        elif t == ">>":
            depth -= 2
        if t == "=" and depth == 0:
            return None
        if t == "(" and depth == 0:
            prev = head[i - 1] if i else ""
            if prev.startswith("operator"):
                return prev
            prev = head[i - 1] if i else ""
            if prev in KEYWORDS_BEFORE_PAREN:
                i = matching(head, i, "(", ")")
                continue
            if prev == ">" or prev == ">>":
                return None  # f<...>(: an explicit specialization, not declared here
            if re.match(r"[A-Za-z_]\w*$", prev):
                name = prev
                j = i - 1
                # qualified names (out-of-class definitions) keep their qualification
                while j >= 2 and head[j - 1] == "::":
                    name = head[j - 2] + "::" + name
                    j -= 2
                if name.startswith("~") or (j >= 1 and head[j - 1] == "~"):
                    return "~" + name
                return name
            return None
        i += 1
    return None


def field_of(head):
    """(name, default) of a data member or variable head ending before ';'."""
    depth = 0
    for i, t in enumerate(head):
        if t in ("(", "[", "{"):
            depth += 1
        elif t in (")", "]", "}"):
            depth -= 1
        elif t == "=" and depth == 0:
            return head[i - 1], join(head[i + 1:])
    if head and head[-1] == "}":
        # name{default}
        k = len(head) - 1
        depth = 0
        while k >= 0:
            if head[k] == "}":
                depth += 1
            elif head[k] == "{":
                depth -= 1
                if depth == 0:
                    break
            k -= 1
        inner = join(head[k + 1:-1])
        return head[k - 1], inner if inner else "{}"
    return (head[-1] if head else None), None


def parse(tokens, header, detail_types):
    """Walks `tokens`, filling header.types/functions with public declarations and
    detail_types with every class found in a detail namespace (for inherited members)."""
    # Scope stack entries: ("namespace", name) or ("class", Type, access, public_path)
    stack = []

    def namespace_path():
        return [s[1] for s in stack if s[0] == "namespace"]

    def in_detail():
        names = namespace_path()
        if names and names[0] != "duplex":
            return True  # std:: specializations and the like
        for s in stack:
            if s[0] == "namespace" and (s[1] == "detail" or s[1].endswith("_detail") or
                                        s[1] == ""):
                return True
            if s[0] == "class" and s[3] is False:
                return True
        return False

    def current_class():
        return stack[-1] if stack and stack[-1][0] == "class" else None

    i = 0
    head = []
    while i < len(tokens):
        t = tokens[i]
        cls = current_class()
        if t == "}":
            head = []
            if stack:
                stack.pop()
            i += 1
            # `};` after a class body
            if i < len(tokens) and tokens[i] == ";":
                i += 1
            continue
        if cls and not head and t in ("public", "private", "protected") and \
                i + 1 < len(tokens) and tokens[i + 1] == ":":
            stack[-1] = (cls[0], cls[1], t, cls[3])
            i += 2
            continue
        if t == ";":
            declare(head, stack, header, detail_types, in_detail(), namespace_path())
            head = []
            i += 1
            continue
        if t == "{" and (open_parens(head) or in_init_list(head)) and head and \
                head[-1] not in (")", "}"):
            # A brace inside a parameter list (a default `= {}`) or a member's brace
            # initializer in a constructor's init list: part of the declaration.
            end = matching(tokens, i, "{", "}")
            head.extend(tokens[i:end])
            i = end
            continue
        if t == "{":
            h = strip_attributes(skip_template_prefix(head))
            if h and h[0] == "namespace":
                name = h[1] if len(h) > 1 else ""
                for part in join(h[1:]).split("::") if len(h) > 1 else [""]:
                    stack.append(("namespace", part))
                head = []
                i += 1
                continue
            if h and h[0] == "extern":
                stack.append(("namespace", namespace_path()[-1] if namespace_path() else ""))
                head = []
                i += 1
                continue
            kind = class_kind(h)
            if kind:
                typ = open_class(h, kind, stack, header, detail_types, in_detail(),
                                 namespace_path())
                default_access = "private" if kind == "class" else "public"
                visible = typ is not None and typ.name is not None and not in_detail() and \
                    (cls is None or cls[2] == "public")
                if kind == "enum":
                    end = matching(tokens, i, "{", "}")
                    if typ is not None:
                        body = tokens[i + 1:end - 1]
                        for part in split_commas(body):
                            if part:
                                typ.values.append(part[0])
                    i = end
                    while i < len(tokens) and tokens[i] != ";":
                        i += 1
                    i += 1
                    head = []
                    continue
                stack.append(("class", typ, default_access, visible))
                head = []
                i += 1
                continue
            if function_name(h) is not None or (h and h[-1] in (")", "const", "noexcept",
                                                                "override", "final")):
                # A function body: the declaration counts, the body is skipped.
                declare(head, stack, header, detail_types, in_detail(), namespace_path(),
                        is_function_body=True)
                i = matching(tokens, i, "{", "}")
                head = []
                continue
            # A brace initializer: part of the declaration, up to ';'.
            end = matching(tokens, i, "{", "}")
            head.extend(tokens[i:end])
            i = end
            continue
        head.append(t)
        i += 1


def open_parens(head):
    return head.count("(") - head.count(")") > 0


def in_init_list(head):
    """Whether `head` ends inside a constructor's member init list: `X(...) : a(1), b`."""
    depth = 0
    seen_params = False
    for t in head:
        if t in ("(", "[", "{"):
            depth += 1
        elif t in (")", "]", "}"):
            depth -= 1
            if depth == 0 and t == ")":
                seen_params = True
        elif t == ":" and depth == 0 and seen_params:
            return True
    return False


def split_commas(tokens):
    parts = [[]]
    depth = 0
    for t in tokens:
        if t in ("(", "{", "["):
            depth += 1
        elif t in (")", "}", "]"):
            depth -= 1
        if t == "," and depth == 0:
            parts.append([])
        else:
            parts[-1].append(t)
    return parts


def class_kind(h):
    h = [t for t in h if t not in ("alignas",)]
    if not h:
        return None
    if h[0] == "enum":
        return "enum"
    if h[0] in ("struct", "class", "union"):
        return "class" if h[0] == "class" else "struct"
    return None


def class_name_and_bases(h):
    h = [t for t in h if t not in ("final",)]
    j = 1
    if h[0] == "enum" and len(h) > 1 and h[1] in ("class", "struct"):
        j = 2
    name = h[j] if j < len(h) and re.match(r"[A-Za-z_]\w*$", h[j]) else None
    bases = []
    if ":" in h[j:]:
        k = h.index(":", j)
        if h[0] != "enum":
            for part in split_angle_commas(h[k + 1:]):
                part = [p for p in part if p not in ("public", "private", "protected",
                                                     "virtual")]
                bases.append(join(part))
    return name, bases


def split_angle_commas(tokens):
    parts = [[]]
    depth = 0
    for t in tokens:
        if t in ("<", "(", "["):
            depth += 1
        elif t in (">", ")", "]"):
            depth -= 1
        elif t == ">>":
            depth -= 2
        if t == "," and depth == 0:
            parts.append([])
        else:
            parts[-1].append(t)
    return parts


def qualified(stack, name):
    outer = [s[1].name for s in stack if s[0] == "class" and s[1] is not None]
    ns = [s[1] for s in stack if s[0] == "namespace"]
    prefix = [p for p in ns if p != "duplex"]
    if outer:
        return outer[-1] + "::" + name
    return "::".join(prefix + [name])


def open_class(h, kind, stack, header, detail_types, hidden, ns):
    h = strip_attributes(skip_template_prefix(h))
    name, bases = class_name_and_bases(h)
    if name is None:
        return Type(None, kind, header.path, ns)
    typ = Type(qualified(stack, name), kind, header.path, ns)
    typ.bases = bases
    cls = stack[-1] if stack and stack[-1][0] == "class" else None
    if hidden:
        detail_types[name] = typ
    elif cls is None or (cls[2] == "public" and cls[3]):
        header.types.setdefault(typ.name, typ)
        typ = header.types[typ.name]
        if cls is not None and cls[1] is not None:
            cls[1].members.add(name)
            cls[1].member_types.add(name)
    return typ


def declare(head, stack, header, detail_types, hidden, ns, is_function_body=False):
    h = strip_attributes(skip_template_prefix(head))
    if not h or h[0] in ("friend", "static_assert", "namespace"):
        return
    cls = stack[-1] if stack and stack[-1][0] == "class" else None
    owner = cls[1] if cls else None
    if cls is not None and (owner is None or cls[2] != "public"):
        return  # a private or protected member, or one of an unnamed class
    if cls is None and hidden:
        return  # in a detail or unnamed namespace
    if h[0] in ("using", "typedef"):
        # A member type (using x = ...; typedef ... x;); namespace-scope aliases are types.
        alias = h[1] if h[0] == "using" and len(h) >= 3 and h[2] == "=" else \
            (h[-1] if h[0] == "typedef" else None)
        if alias is None:
            return
        if owner is not None:
            owner.members.add(alias)
            owner.member_types.add(alias)
        else:
            typ = Type(qualified(stack, alias), "alias", header.path, ns)
            header.types.setdefault(typ.name, typ)
        return
    kind = class_kind(h)
    if kind:  # a forward declaration
        return
    name = function_name(h)
    if name is not None:
        if "::" in name or name.startswith("~"):
            return  # an out-of-class definition, a destructor
        deleted = len(h) >= 2 and h[-2] == "=" and h[-1] == "delete"
        if deleted:
            return
        if owner is not None:
            owner.members.add(name)
        elif not hidden:
            header.functions.add(name)
        return
    if is_function_body:
        return
    if owner is not None:
        fname, default = field_of(h)
        if fname and re.match(r"[A-Za-z_]\w*$", fname):
            owner.fields[fname] = default
    # namespace-scope variables (inline constexpr ...) are documented as functions are
    elif not hidden:
        fname, default = field_of(h)
        if fname and re.match(r"[A-Za-z_]\w*$", fname) and "constexpr" in h:
            header.functions.add(fname)
            header.constants.add(fname)


def public_headers(root):
    base = os.path.join(root, "include", "duplex")
    out = []
    for sub in ("", "transport", "protocol"):
        d = os.path.join(base, sub)
        for f in sorted(os.listdir(d)):
            if f.endswith(".hpp"):
                out.append(os.path.join(d, f))
    return out


def read_api(root):
    detail_types = {}
    base = os.path.join(root, "include", "duplex")
    # detail/ first, so that policies can inherit from what is there.
    for f in sorted(os.listdir(os.path.join(base, "detail"))):
        if f.endswith(".hpp"):
            parse(tokenize(open(os.path.join(base, "detail", f), encoding="utf-8").read()),
                  Header(f), detail_types)
    headers = []
    for path in public_headers(root):
        rel = os.path.relpath(path, os.path.join(root, "include"))
        header = Header(rel)
        parse(tokenize(open(path, encoding="utf-8").read()), header, detail_types)
        headers.append(header)
    # Public members inherited from a detail base.
    for header in headers:
        for typ in header.types.values():
            for base_text in typ.bases:
                m = re.match(r"(?:duplex::)?detail::(\w+)", base_text)
                if m and m.group(1) in detail_types:
                    inherited = detail_types[m.group(1)]
                    typ.members |= inherited.members
                    typ.member_types |= inherited.member_types
                    for k, v in inherited.fields.items():
                        typ.fields.setdefault(k, v)
    return headers


# ---------------------------------------------------------------------------------------------
# Reading the page.

H2 = re.compile(r"^## `([^`]+)`")
H3 = re.compile(r"^### `([^`]+)`|^### Functions\s*$")
ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|\s*(`([^`]*)`|—)\s*\|")
LIST = re.compile(r"^(Members|Values|Functions):\s*(.*)$")


def read_page(text):
    page = {}
    header = typ = None
    last_list = None
    for number, line in enumerate(text.split("\n"), 1):
        line = line.rstrip("\n")
        m = H2.match(line)
        if m:
            header = page.setdefault(m.group(1), {"types": {}, "functions": set()})
            typ = None
            last_list = None
            continue
        if header is None:
            continue
        m = H3.match(line)
        if m:
            if m.group(1):
                typ = header["types"].setdefault(m.group(1), {"fields": {}, "members": set(),
                                                              "values": set(), "line": number})
            else:
                typ = "functions"
            last_list = None
            continue
        if line.startswith("## "):
            header = None
            continue
        m = ROW.match(line)
        if m and isinstance(typ, dict):
            default = m.group(3) if m.group(2) != "—" else None
            typ["fields"][m.group(1)] = default
            continue
        m = LIST.match(line)
        if m:
            last_list = m.group(1)
            names = re.findall(r"`([^`]+)`", m.group(2))
        elif last_list and line.strip() and not line.startswith(("|", "#")):
            names = re.findall(r"`([^`]+)`", line)
        else:
            last_list = None
            continue
        names = [re.sub(r"\(.*$", "", n) for n in names]
        if last_list == "Functions" or typ == "functions":
            header["functions"].update(names)
        elif isinstance(typ, dict):
            typ["members" if last_list == "Members" else "values"].update(names)
    return page


def normalize(text):
    return None if text is None else re.sub(r"\s+", "", text)


def compare(headers, page):
    problems = []
    seen = set()
    for header in headers:
        entry = page.get(header.path)
        if entry is None:
            problems.append(f"{header.path}: no `## \u0060{header.path}\u0060` section")
            continue
        seen.add(header.path)
        for name, typ in sorted(header.types.items()):
            doc = entry["types"].get(name)
            if doc is None:
                problems.append(f"{header.path}: type `{name}` is not documented")
                continue
            for field, default in sorted(typ.fields.items()):
                if field not in doc["fields"]:
                    problems.append(f"{header.path}: `{name}::{field}` is not in the table")
                elif normalize(doc["fields"][field]) != normalize(default):
                    problems.append(f"{header.path}: `{name}::{field}` defaults to "
                                    f"`{default}` in the header, "
                                    f"`{doc['fields'][field]}` on the page")
            for field in sorted(set(doc["fields"]) - set(typ.fields)):
                problems.append(f"{header.path}: `{name}::{field}` is on the page, "
                                "not a public field of the header")
            for member in sorted(typ.members - doc["members"]):
                problems.append(f"{header.path}: `{name}::{member}` is not listed in Members")
            for member in sorted(doc["members"] - typ.members):
                problems.append(f"{header.path}: Members of `{name}` lists `{member}`, "
                                "which the header does not declare (publicly)")
            values = set(typ.values)
            for value in sorted(values - doc["values"]):
                problems.append(f"{header.path}: `{name}::{value}` is not listed in Values")
            for value in sorted(doc["values"] - values):
                problems.append(f"{header.path}: Values of `{name}` lists `{value}`, "
                                "which the header does not declare")
        for name in sorted(set(entry["types"]) - set(header.types)):
            problems.append(f"{header.path}: the page documents type `{name}`, "
                            "which the header does not declare (publicly)")
        for fn in sorted(header.functions - entry["functions"]):
            problems.append(f"{header.path}: function `{fn}` is not listed in Functions")
        for fn in sorted(entry["functions"] - header.functions):
            problems.append(f"{header.path}: Functions lists `{fn}`, "
                            "which the header does not declare")
    for name in sorted(set(page) - seen):
        problems.append(f"the page has a section for `{name}`, which is not a public header")
    return problems


def self_check(headers, text):
    """The check must be able to fail: a page with a field dropped, a default changed or a
    member invented must not pass. Returns what went undetected."""
    rows = [line for line in text.split("\n") if ROW.match(line) and "`" in line.split("|")[2]]
    lists = [line for line in text.split("\n") if line.startswith("Members: ")]
    if not rows or not lists:
        return ["self-check: the page has no field rows or no Members lines to mutate"]
    row = rows[len(rows) // 2]
    name = ROW.match(row).group(1)
    changed = row.replace(ROW.match(row).group(2), "`changed by the self-check`", 1)
    mutations = {
        f"dropping the row of `{name}`": text.replace(row + "\n", "", 1),
        f"changing the default of `{name}`": text.replace(row, changed, 1),
        "listing a member that does not exist": text.replace(
            lists[0], lists[0].rstrip(".") + ", `no_such_member()`.", 1),
    }
    missed = []
    for what, mutated in mutations.items():
        if not compare(headers, read_page(mutated)):
            missed.append(f"self-check: {what} went unnoticed")
    return missed


def skeleton(headers):
    out = []
    for header in headers:
        out.append(f"## `{header.path}`\n")
        for name, typ in header.types.items():
            out.append(f"### `{name}`\n")
            if typ.fields:
                out.append("| field | default | |\n|---|---|---|")
                for field, default in typ.fields.items():
                    d = "—" if default is None else f"`{default}`"
                    out.append(f"| `{field}` | {d} | |")
                out.append("")
            if typ.members:
                out.append("Members: " + ", ".join(
                    f"`{m}`" if m in typ.member_types else f"`{m}()`"
                    for m in sorted(typ.members)) + ".\n")
            if typ.values:
                out.append("Values: " + ", ".join(f"`{v}`" for v in typ.values) + ".\n")
        if header.functions:
            out.append("### Functions\n")
            out.append("Functions: " + ", ".join(
                f"`{f}`" if f in header.constants else f"`{f}()`"
                for f in sorted(header.functions)) + ".\n")
    return "\n".join(out)



def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", default=os.path.join(os.path.dirname(__file__), "..", ".."))
    parser.add_argument("--page", default=None)
    parser.add_argument("--skeleton", action="store_true")
    args = parser.parse_args()
    headers = read_api(args.root)
    if args.skeleton:
        print(skeleton(headers))
        return 0
    page_path = os.path.normpath(args.page or os.path.join(args.root, "docs", "api.md"))
    text = open(page_path, encoding="utf-8").read()
    problems = compare(headers, read_page(text))
    if not problems:
        problems = self_check(headers, text)
    types = sum(len(h.types) for h in headers)
    fields = sum(len(t.fields) for h in headers for t in h.types.values())
    members = sum(len(t.members) for h in headers for t in h.types.values())
    functions = sum(len(h.functions) for h in headers)
    if problems:
        print(f"{page_path} disagrees with the headers ({len(problems)} problems):")
        for p in problems:
            print("  " + p)
        return 1
    print(f"{page_path} matches the headers: {len(headers)} headers, {types} types, "
          f"{fields} fields with their defaults, {members} members, {functions} functions "
          "(and a page with a row dropped, a default changed or a member invented does not)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
