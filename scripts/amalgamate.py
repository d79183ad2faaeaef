#!/usr/bin/env python3
"""Generate the two-file build of the sluice core library: sluice.c (one
translation unit holding every core source and internal header) and
sluice.h (the public header, unchanged), for projects that want to drop
two files into their tree and compile them with one command:

    cc -O2 -I build/amalgamation app.c build/amalgamation/sluice.c -lpthread

    scripts/amalgamate.py [--tls] [--out DIR]     (default DIR: build/amalgamation)

The core is what the CMake build lists in SL_CORE_SOURCES: it needs only
libc and POSIX. TLS is left out (src/tls_none.c: its calls return
SL_ENOTSUP) unless --tls is given, which puts src/tls.c in instead; link
that build with -lssl -lcrypto.

Only the public API (sl_*) is exported from sluice.c. What the sources
share between modules (the sl__ functions and objects of src/*.h) becomes
`static` here, so a program embedding sluice sees no internal symbol. Since
every module now shares one scope, the script also:
  - renames a file's static functions and variables whose name another
    module uses for its own (`state` in http.c and ws.c become
    `http__state` and `ws__state`), leaving member names alone;
  - #undef's at the end of each module the macros it defined, so two
    modules may each define, say, DEFAULT_HANDSHAKE_MS their own way.
The result compiles warning-free with gcc and clang at -Wall -Wextra.
"""
import argparse
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "src")

# ---- a small C lexer: the text split into tokens that join back to it ----

TOKEN_RE = re.compile(r"""
    (?P<ws>[ \t\r\n\f\v]+|\\\n)
  | (?P<comment>/\*.*?\*/|//[^\n]*)
  | (?P<str>"(?:\\.|[^"\\\n])*")
  | (?P<chr>'(?:\\.|[^'\\\n])*')
  | (?P<id>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<num>\.?[0-9](?:[eEpP][+-]|[A-Za-z0-9_.])*)
  | (?P<punct>->|\+\+|--|<<=|>>=|<<|>>|<=|>=|==|!=|&&|\|\||[-+*/%&|^!=<>]=|\.\.\.|[{}()\[\];,.<>+\-*/%&|^!~?:=#])
""", re.S | re.X)


def lex(text, path):
    """Tokens (kind, text). A preprocessor directive is one 'pp' token."""
    toks = []
    i, n = 0, len(text)
    at_line_start = True
    while i < n:
        if at_line_start:
            m = re.compile(r"[ \t]*#").match(text, i)
            if m:
                j = m.end()
                while j < n:
                    if text.startswith("/*", j):
                        k = text.find("*/", j + 2)
                        j = n if k < 0 else k + 2
                    elif text.startswith("\\\n", j):
                        j += 2
                    elif text[j] == "\n":
                        break
                    else:
                        j += 1
                toks.append(("pp", text[i:j]))
                i = j
                continue
        m = TOKEN_RE.match(text, i)
        if not m:
            sys.exit(f"amalgamate: {path}: cannot lex at {text[i:i + 40]!r}")
        kind = m.lastgroup
        toks.append((kind, m.group()))
        if kind == "ws" or kind == "comment":
            if "\n" in m.group():
                at_line_start = True
        else:
            at_line_start = False
        i = m.end()
    return toks


def significant(toks):
    return [k for k in range(len(toks)) if toks[k][0] not in ("ws", "comment")]


# ---- file-scope declarations ---------------------------------------------

def top_level_decls(toks):
    """Yield (start, end) token ranges of declarations at file scope: from
    the first significant token to the ';' that ends it, or to the '}'
    that ends a function body (a '{' right after ')'). Preprocessor lines
    are skipped."""
    depth = 0
    start = None
    body = False           # the open '{' at depth 0 is a function body
    prev = None
    for k, (kind, t) in enumerate(toks):
        if kind in ("ws", "comment", "pp"):
            continue
        if start is None:
            start = k
        if t == "{":
            if depth == 0:
                body = prev == ")"
            depth += 1
        elif t == "}":
            depth -= 1
            if depth == 0 and body:
                yield start, k + 1
                start = None
                body = False
        elif t == ";" and depth == 0:
            yield start, k + 1
            start = None
        prev = t


def declarator_names(toks, start, end):
    """Names declared by the file-scope declaration toks[start:end], as
    (name, is_function) pairs: the identifier before the first '(' (a
    function), the one inside a '(*name)' group (a pointer to a function
    or an array: an object), or the last one before '[', '=', ',' or ';'
    at nesting 0 (objects). Attributes are skipped."""
    names = []
    paren = brace = 0
    last_id = None
    k = start

    def nxt(j):
        j += 1
        while j < end and toks[j][0] in ("ws", "comment"):
            j += 1
        return j

    def skip_to_separator(j):
        d = 0
        while j < end:
            tt = toks[j][1]
            if tt in ("(", "[", "{"):
                d += 1
            elif tt in (")", "]", "}"):
                d -= 1
            elif tt in (",", ";") and d == 0:
                break
            j += 1
        return j

    while k < end:
        kind, t = toks[k]
        if kind == "id" and t in ("__attribute__", "__attribute"):
            k = nxt(k)
            d = 0
            while k < end:
                if toks[k][1] == "(":
                    d += 1
                elif toks[k][1] == ")":
                    d -= 1
                    if d == 0:
                        break
                k += 1
            k += 1
            continue
        if kind == "id":
            last_id = t
        elif t == "(" and paren == 0 and brace == 0:
            j = nxt(k)
            if j < end and toks[j][1] == "*":
                # (*name)(...) or (*name)[...]: an object.
                while j < end and toks[j][0] != "id":
                    j += 1
                if j < end:
                    names.append((toks[j][1], False))
                k = skip_to_separator(k)
                last_id = None
                if k < end and toks[k][1] == ",":
                    k += 1
                    continue
                return names
            if last_id:
                names.append((last_id, True))
            return names
        elif t in ("{",):
            brace += 1
        elif t in ("}",):
            brace -= 1
        elif t in ("[", "=", ",", ";") and paren == 0 and brace == 0:
            if last_id and all(n != last_id for n, _ in names):
                names.append((last_id, False))
            last_id = None
            if t in ("=", "["):
                k = skip_to_separator(k)
                continue
        k += 1
    return names


def first_sig(toks, start, end):
    for k in range(start, end):
        if toks[k][0] not in ("ws", "comment"):
            return k
    return None


def file_statics(toks):
    """File-scope static functions and objects of one source file: a dict
    of name -> True for a function."""
    out = {}
    for s, e in top_level_decls(toks):
        f = first_sig(toks, s, e)
        if f is not None and toks[f][1] == "static":
            for n, func in declarator_names(toks, s, e):
                out[n] = func
    return out


def identifiers(toks):
    return {t for kind, t in toks if kind == "id"}


# ---- renaming -------------------------------------------------------------

def rename(toks, old, new):
    """Rename identifier `old` to `new` in tokens, but not as a member: not
    after '.' or '->', and not in the body of a struct or union."""
    out = list(toks)
    prev = None            # previous significant token text
    stack = []             # for each open '{': is it a struct/union body?
    pending_aggregate = False
    for k, (kind, t) in enumerate(toks):
        if kind in ("ws", "comment"):
            continue
        if kind == "pp":
            out[k] = (kind, re.sub(r"(?<![.\w>])\b%s\b" % re.escape(old), new, t))
            continue
        if t in ("struct", "union"):
            pending_aggregate = True
        elif t == "{":
            stack.append(pending_aggregate)
            pending_aggregate = False
        elif t == "}":
            if stack:
                stack.pop()
        elif t in (";", "(", ")", ",", "="):
            pending_aggregate = False
        if kind == "id" and t == old and prev not in (".", "->") \
                and not (stack and stack[-1]):
            out[k] = (kind, new)
        prev = t
    return out


# ---- sl__ internals made static ------------------------------------------

def make_internals_static(toks):
    """Prefix every file-scope declaration of an sl__ function or object
    with SL__STATIC (dropping `extern`)."""
    out = list(toks)
    for s, e in top_level_decls(toks):
        f = first_sig(toks, s, e)
        if f is None or toks[f][1] in ("static", "typedef"):
            continue
        names = [n for n, _ in declarator_names(toks, s, e)]
        if not any(n.startswith("sl__") for n in names):
            continue
        if not all(n.startswith("sl__") for n in names):
            sys.exit(f"amalgamate: a declaration mixes sl__ and other names: {names}")
        if toks[f][1] == "extern":
            out[f] = ("id", "SL__STATIC")
        else:
            out[f] = ("id", "SL__STATIC " + toks[f][1])
    return out


# ---- the build -------------------------------------------------------------

def core_sources(tls):
    cm = open(os.path.join(ROOT, "CMakeLists.txt")).read()
    m = re.search(r"set\(SL_CORE_SOURCES(.*?)\)", cm, re.S)
    if not m:
        sys.exit("amalgamate: SL_CORE_SOURCES not found in CMakeLists.txt")
    srcs = re.findall(r"src/[\w.]+\.c", m.group(1))
    srcs.append("src/tls.c" if tls else "src/tls_none.c")
    return srcs


INCLUDE_RE = re.compile(r'[ \t]*#[ \t]*include[ \t]*"([^"]+)"')
DEFINE_RE = re.compile(r"[ \t]*#[ \t]*define[ \t]+([A-Za-z_]\w*)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tls", action="store_true", help="include src/tls.c (link -lssl -lcrypto)")
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "amalgamation"))
    args = ap.parse_args()

    srcs = core_sources(args.tls)
    lexed = {}

    def get(path):
        if path not in lexed:
            lexed[path] = lex(open(os.path.join(ROOT, path)).read(), path)
        return lexed[path]

    # Statics to rename in their module: those that two modules both
    # declare, and static objects whose name any other module or header
    # uses (a local `total` would shadow alloc.c's: -Wshadow).
    statics = {p: file_statics(get(p)) for p in srcs}
    headers = [os.path.join("src", h) for h in sorted(os.listdir(SRC)) if h.endswith(".h")]
    idents = {p: identifiers(get(p)) for p in srcs + headers}
    seen = {}
    for p in srcs:
        for n in statics[p]:
            seen.setdefault(n, []).append(p)
    clash = {n for n, ps in seen.items() if len(ps) > 1}
    renames = {}
    for p in srcs:
        mine = set(statics[p]) & clash
        for n, func in statics[p].items():
            if not func and any(n in idents[q] for q in idents if q != p):
                mine.add(n)
        renames[p] = mine

    header_done = set()
    defined_by_headers = set()
    out = []
    version = re.search(r'#define SL_VERSION "([^"]+)"',
                        open(os.path.join(ROOT, "include", "sluice.h")).read()).group(1)
    out.append(f"""/*
 * sluice {version}: the core library in one file (amalgamation), generated by
 * scripts/amalgamate.py from src/ ({"with" if args.tls else "without"} TLS). Do not edit: change src/
 * and regenerate. Build with the public header sluice.h beside it:
 *   cc -O2 -I DIR app.c DIR/sluice.c -lpthread{" -lssl -lcrypto" if args.tls else ""}
 * Only the public API (sl_*) is exported; the library's internals are static.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#if defined(__GNUC__) || defined(__clang__)
#define SL__STATIC static __attribute__((unused))
#else
#define SL__STATIC static
#endif
#include "sluice.h"
""")

    def emit_tokens(toks, path, depth):
        """Emit a file's tokens, inlining the project's own headers once."""
        buf = []
        for kind, t in toks:
            if kind == "pp":
                m = INCLUDE_RE.match(t)
                if m:
                    name = m.group(1)
                    if name == "sluice.h":
                        continue
                    hpath = os.path.join("src", name)
                    if not os.path.exists(os.path.join(ROOT, hpath)):
                        sys.exit(f"amalgamate: {path}: #include \"{name}\" not found in src/")
                    if hpath not in header_done:
                        header_done.add(hpath)
                        out.append("".join(buf))
                        buf = []
                        out.append(f"\n/* ---- {hpath} ---- */\n")
                        htoks = make_internals_static(get(hpath))
                        for hk, ht in htoks:
                            if hk == "pp":
                                d = DEFINE_RE.match(ht)
                                if d:
                                    defined_by_headers.add(d.group(1))
                        emit_tokens(htoks, hpath, depth + 1)
                        out.append(f"\n/* ---- end of {hpath} ---- */\n")
                    continue
            buf.append(t)
        out.append("".join(buf))

    for p in srcs:
        toks = get(p)
        for n in sorted(renames[p]):
            stem = os.path.splitext(os.path.basename(p))[0]
            toks = rename(toks, n, f"{stem}__{n}")
        toks = make_internals_static(toks)
        out.append(f"\n/* ======== {p} ======== */\n")
        emit_tokens(toks, p, 0)
        # The module's own macros end with it.
        mine = []
        for kind, t in toks:
            if kind == "pp":
                d = DEFINE_RE.match(t)
                if d and d.group(1) not in defined_by_headers and d.group(1) != "_GNU_SOURCE" \
                        and d.group(1) not in mine:
                    mine.append(d.group(1))
        if mine:
            out.append("\n" + "".join(f"#undef {n}\n" for n in mine))

    os.makedirs(args.out, exist_ok=True)
    text = "".join(out)
    with open(os.path.join(args.out, "sluice.c"), "w") as f:
        f.write(text)
    with open(os.path.join(ROOT, "include", "sluice.h")) as f:
        hdr = f.read()
    with open(os.path.join(args.out, "sluice.h"), "w") as f:
        f.write(hdr)
    print(f"amalgamate: {os.path.join(args.out, 'sluice.c')} ({len(srcs)} sources, "
          f"{text.count(chr(10))} lines; renamed: "
          f"{', '.join(sorted(set().union(*renames.values()))) or 'none'}) "
          f"and sluice.h")


if __name__ == "__main__":
    main()
