"""Reading C and assembler source of a Xen tree by its shape, for `pvsmt extract`.

* `tree_release`: the release a tree says it is (xen/Makefile).
* `Constants`: a name's value as the compiler sees it: the headers reachable from a file
  through the tree's own include paths (read from its Makefiles), run through pcpp.
* `functions`, `calls`, `guards`: function bodies, call arguments and the conditions a
  statement runs under, in preprocessed text (pcpp's output with `#line` markers).
* `evaluate`: a guard with the few atoms pvsmt understands, per vendor; anything else is
  an InputError naming the line ("not understood"), never a guess.
"""

from __future__ import annotations

import ast
import bisect
import contextlib
import functools
import os
import io
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError, Location

# ---- the release ------------------------------------------------------------------------------

MAKEFILE = Path("xen/Makefile")
_VERSION = re.compile(r"^\s*(?:export\s+)?XEN_(VERSION|SUBVERSION|EXTRAVERSION)\s*[?:]?=\s*(.*?)\s*$")


def tree_release(tree: Path) -> tuple[int, int, str]:
    """(major, minor, extra) from xen/Makefile's XEN_VERSION, XEN_SUBVERSION and XEN_EXTRAVERSION,
    e.g. (4, 20, ".0") or (4, 23, "-unstable"); XEN_VENDORVERSION is left out."""
    return release_lines(tree)[0]


def release_lines(tree: Path) -> tuple[tuple[int, int, str], Location]:
    path = tree / MAKEFILE
    try:
        text = path.read_text()
    except OSError:
        raise InputError(str(path), "not found: the tree's release (XEN_VERSION, XEN_SUBVERSION) is read here") from None
    found: dict[str, tuple[str, int]] = {}
    for n, line in enumerate(text.splitlines(), 1):
        m = _VERSION.match(line)
        if m and m.group(1) not in found:
            found[m.group(1)] = (m.group(2), n)
    try:
        major, minor = int(found["VERSION"][0]), int(found["SUBVERSION"][0])
    except (KeyError, ValueError):
        raise InputError(str(path), "no numeric XEN_VERSION and XEN_SUBVERSION: cannot tell the tree's release") from None
    extra = re.sub(r"\$\(XEN_VENDORVERSION\)", "", found.get("EXTRAVERSION", ("", 0))[0]).strip()
    return (major, minor, extra), Location(str(path), found["VERSION"][1])


def release_text(release: tuple[int, int, str]) -> str:
    return f"{release[0]}.{release[1]}{release[2]}"


# ---- include paths and constants --------------------------------------------------------------

_DASH_I = re.compile(r"(?<![,\w])-I\s*\$\((BASEDIR|srctree|abs_srctree)\)/?(\S*)")
_ASM_LINK = re.compile(r"ln\s+-sf?\s+asm-\$\((?:TARGET_ARCH|SRCARCH)\)\s+include/asm\b")
_INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.M)
_INCLUDE_AT = re.compile(r'#\s*include\s*([<"])([^>"]+)[>"]')   # _INCLUDE from its '#': a literal to scan for


def _includes(text: str) -> list[tuple[str, str]]:
    """(`<` or `"`, name) of each match of _INCLUDE.finditer(text), found from the '#' (re scans for a
    literal far faster than for the start of a line): a '#' counts when whitespace alone separates it from the start
    of its line, and that line starts after the previous match (whitespace back to any line start
    means back to its own line's start)."""
    out, pos, done = [], 0, 0
    while True:
        m = _INCLUDE_AT.search(text, pos)
        if m is None:
            return out
        at = m.start()
        line = text.rfind("\n", 0, at) + 1
        if line >= done and (line == at or text[line:at].isspace()):
            out.append((m.group(1), m.group(2)))
            pos = done = m.end()
        else:
            pos = at + 1      # a later '#' inside this candidate may still start a match


@dataclass(frozen=True)
class IncludePaths:
    paths: tuple[Path, ...]
    aliases: tuple[tuple[Path, Path], ...]   # (symlink the build makes, its target)
    forced: tuple[Path, ...]                 # -include FILE


def include_paths(tree: Path) -> IncludePaths:
    """The -I paths of xen/Makefile, xen/Rules.mk and xen/arch/x86/arch.mk (source-tree ones; objtree
    ones hold generated headers a source tree lacks), `-include .../xen/config.h`, and the
    include/asm -> asm-x86 link older Makefiles make."""
    xen = tree / "xen"
    paths, aliases, forced = [], [], []
    for rel in ("Makefile", "Rules.mk", "arch/x86/arch.mk", "arch/x86/Rules.mk"):
        try:
            text = (xen / rel).read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if not re.search(r"\bC(?:PP)?FLAGS\b|\bXEN_CFLAGS\b", line):
                if _ASM_LINK.search(line):
                    aliases.append((xen / "include" / "asm", xen / "include" / "asm-x86"))
                continue
            for m in _DASH_I.finditer(line):
                sub = m.group(2).replace("$(TARGET_ARCH)", "x86").replace("$(SRCARCH)", "x86")
                if "$(" not in sub and (xen / sub) not in paths:
                    paths.append(xen / sub)
            for m in re.finditer(r"-include\s+\$\((?:BASEDIR|srctree)\)/(\S+)", line):
                forced.append(xen / m.group(1))
    if not paths:
        raise InputError(str(xen / "Makefile"), "no -I$(srctree)/... or -I$(BASEDIR)/... include path: "
                                                "cannot resolve the tree's constants as the compiler would")
    return IncludePaths(tuple(paths), tuple(dict.fromkeys(aliases)), tuple(forced))


def _resolve_include(inc: IncludePaths, name: str, here: Path | None) -> Path | None:
    candidates = ([here / name] if here is not None else []) + [p / name for p in inc.paths]
    for cand in map(lambda c: Path(os.path.normpath(c)), candidates):
        if cand.is_file():
            return cand
        for link, target in inc.aliases:
            try:
                rel = cand.relative_to(link)
            except ValueError:
                continue
            if (target / rel).is_file():
                return target / rel
    return None


def include_closure(tree: Path, file: Path, inc: IncludePaths) -> list[Path]:
    """Every header the compiler may read for `file`, in first-inclusion order (every #include
    line is followed, whatever #if it sits under: a superset, narrowed by the preprocessor)."""
    seen: dict[Path, None] = {}
    resolved: dict[tuple[str, Path | None], Path | None] = {}   # most headers include <xen/types.h>, ...

    def visit(path: Path) -> None:
        text = _text(path)
        for quote, name in _includes(text):
            key = (name, path.parent if quote == '"' else None)
            if key not in resolved:
                resolved[key] = _resolve_include(inc, *key)
            found = resolved[key]
            if found is not None and found not in seen:
                seen[found] = None
                visit(found)
    for f in inc.forced:
        if f.is_file() and f not in seen:
            seen[f] = None
            visit(f)
    visit(file)
    return list(seen)


_TEXT: dict[Path, str] = {}


def _text(path: Path) -> str:
    if path not in _TEXT:
        try:
            _TEXT[path] = path.read_text(errors="replace")
        except OSError:
            _TEXT[path] = ""
    return _TEXT[path]


# ---- the source files under a directory -------------------------------------------------------

_LISTINGS: dict[tuple[Path, tuple[str, ...]], list[Path]] | None = None


@contextlib.contextmanager
def one_listing():
    """Within it, each directory is listed once: an extraction searches xen/arch/x86 for several
    facts, and the function comparison looks through it for every function it encodes."""
    global _LISTINGS
    outer = _LISTINGS
    if outer is None:
        _LISTINGS = {}
    try:
        yield
    finally:
        if outer is None:
            _LISTINGS = None


def source_files(top: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """Every file under `top` whose suffix is one of `suffixes`, in path order: what
    sorted(p for p in top.rglob("*") if p.suffix in suffixes and p.is_file()) gives (symlinked
    directories are not entered, symlinked files are listed), from one os.walk."""
    key = (top, suffixes)
    if _LISTINGS is not None and key in _LISTINGS:
        return _LISTINGS[key]
    found = []
    for parent, _dirs, names in os.walk(top):
        for name in names:
            dot = name.rfind(".")
            if 0 < dot < len(name) - 1 and name[dot:] in suffixes:   # PurePath.suffix
                path = os.path.join(parent, name)
                if os.path.isfile(path):
                    found.append(Path(path))
    found.sort(key=lambda p: p.parts)
    if _LISTINGS is not None:
        _LISTINGS[key] = found
    return found


_DEFINE = re.compile(r"^[ \t]*#[ \t]*define[ \t]+(\w+)(\([^)]*\))?[ \t]*(.*)$", re.M)


@functools.lru_cache(maxsize=32)
def _closure_defines(tree: Path, file: Path) -> tuple[list[Path], dict[Path, list[tuple[str, str]]]]:
    closure = include_closure(tree, file, include_paths(tree))
    return closure, {h: [(m.group(1), m.group(3)) for m in _DEFINE.finditer(_text(h))] for h in closure}


class Constants:
    """Integer constants as the compiler sees them from one source file of the tree."""

    def __init__(self, tree: Path, file: Path, config: dict[str, bool]):
        self.tree, self.file, self.config = tree, file, config
        self.values: dict[str, int | None] = {}

    def resolve(self, names: set[str]) -> None:
        """Work out `names` (identifiers, or expressions of them) in one preprocessor run over the
        headers of the include closure that define them or what their definitions use."""
        todo = {" ".join(n.split()) for n in names} - set(self.values)
        todo = {n for n in todo if integer(n) is None}
        if not todo:
            return
        closure, defines = _closure_defines(self.tree, self.file)
        wanted = set().union(*(set(re.findall(r"[A-Za-z_]\w*", n)) for n in todo))
        while True:
            more = set(wanted)
            for h in closure:
                for name, body in defines[h]:
                    if name in wanted:
                        more |= set(re.findall(r"[A-Za-z_]\w*", body))
            if more == wanted:
                break
            wanted = more
        chosen = [h for h in closure if {name for name, _ in defines[h]} & wanted]
        from pcpp import Preprocessor
        from pcpp.preprocessor import Action, OutputDirective
        pp = Preprocessor()
        pp.line_directive = None
        for name, on in self.config.items():
            if on:
                pp.define(f"{name} 1")
        pp.define("__XEN__ 1")
        pp.define("__x86_64__ 1")

        def skip(*_a):
            raise OutputDirective(Action.IgnoreAndRemove)
        pp.on_include_not_found = skip
        pp.on_error = lambda *_a: None       # #error in a header read out of its context: not ours
        order = sorted(todo)
        source = "".join(f'#include "{h}"\n' for h in chosen)
        source += "".join(f"__pvsmt_value_{i} = {n}\n" for i, n in enumerate(order))
        pp.parse(source, "<constants>")
        out = io.StringIO()
        pp.write(out)
        got = dict(re.findall(r"__pvsmt_value_(\d+)\s*=\s*(.*)", out.getvalue()))
        for i, name in enumerate(order):
            self.values[name] = integer(got.get(str(i), ""))

    def value(self, text: str, where: Location, what: str) -> int:
        text = " ".join(text.split())
        v = integer(text)
        if v is not None:
            return v
        self.resolve({text})
        v = self.values.get(text)
        if v is None:
            raise InputError(where, f"{what} '{text}' is not a constant the compiler sees: no header reachable "
                                    f"from {self.file.relative_to(self.tree)} through the tree's include paths "
                                    f"defines it as a number")
        return v


def integer(text: str) -> int | None:
    """A C integer constant expression of numbers only, or None."""
    text = re.sub(r"\b(0[xX][0-9a-fA-F]+|\d+)[uUlL]+\b", r"\1", text.strip())
    text = re.sub(r"\(\s*(?:unsigned\s+)?(?:int|long|u?int\d+_t)\s*\)", "", text)
    if not text or not re.fullmatch(r"[0-9a-fA-FxX\s()+\-*/%<>|&~^]+", text):
        return None
    try:
        tree = ast.parse(text.replace("/", "//"), mode="eval")
    except SyntaxError:
        return None
    ok = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Constant, ast.operator, ast.unaryop)
    if not all(isinstance(n, ok) for n in ast.walk(tree)):
        return None
    try:
        value = eval(compile(tree, "<constant>", "eval"), {"__builtins__": {}})  # noqa: S307 (numbers only)
    except (ArithmeticError, ValueError):
        return None
    return value if isinstance(value, int) else None


# ---- preprocessed text: functions, calls, guards -------------------------------------------------

@dataclass
class Source:
    """Preprocessed lines joined into one text, with each offset's original location."""

    text: str
    starts: list[int]
    wheres: list[Location]

    @classmethod
    def of(cls, lines: list[tuple[Location, str]]) -> "Source":
        text, starts, wheres = [], [], []
        pos = 0
        for where, t in lines:
            starts.append(pos)
            wheres.append(where)
            text.append(t)
            pos += len(t) + 1
        return cls("\n".join(text) + "\n", starts, wheres)

    def where(self, offset: int) -> Location:
        i = bisect.bisect_right(self.starts, offset) - 1
        return self.wheres[max(i, 0)] if self.wheres else Location("?")


@dataclass
class Function:
    name: str
    params: list[str]
    start: int          # offset of the name
    body: tuple[int, int]  # offsets of '{' and the matching '}'


_KEYWORDS = {"if", "for", "while", "switch", "return", "sizeof", "do", "else", "case"}
_DEF = re.compile(r"\b([A-Za-z_]\w*)\s*\(")
_OPEN_BRACE = re.compile(r"\s*\{")


def functions(src: Source) -> list[Function]:
    """Function definitions at file scope: `name(params) {`."""
    out, text, pos = [], src.text, 0
    while True:
        m = _DEF.search(text, pos)
        if m is None:
            return out
        close = match_paren(text, m.end() - 1)
        if close is None:
            return out
        after = _OPEN_BRACE.match(text, close + 1)
        if m.group(1) in _KEYWORDS or after is None:
            pos = m.end()
            continue
        brace = after.end() - 1
        end = match_brace(text, brace)
        if end is None:
            return out
        params = [_param_name(p) for p in split_args(text[m.end():close])]
        out.append(Function(m.group(1), [p for p in params if p], m.start(), (brace, end)))
        pos = end + 1


def _param_name(param: str) -> str:
    names = re.findall(r"[A-Za-z_]\w*", re.sub(r"\[[^\]]*\]", "", param))
    return names[-1] if names and names[-1] != "void" else ""


def match_paren(text: str, at: int) -> int | None:
    return _match(text, at, "(", ")")


def match_brace(text: str, at: int) -> int | None:
    return _match(text, at, "{", "}")


def _match(text: str, at: int, open_: str, close: str) -> int | None:
    return _match_from(text, at, open_, close, 0)


def _match_from(text: str, start: int, open_: str, close: str, depth: int) -> int | None:
    i = start
    while i < len(text):
        c = text[i]
        if c == open_:
            depth += 1
        elif c == close:
            depth -= 1
            if depth == 0:
                return i
        elif c in "\"'":
            j = text.find(c, i + 1)
            while j > 0 and text[j - 1] == "\\":
                j = text.find(c, j + 1)
            if j < 0:
                return None
            i = j
        i += 1
    return None


def split_args(text: str) -> list[str]:
    """Top-level comma-separated arguments."""
    out, depth, cur = [], 0, []
    for c in text:
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        if c == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(c)
    if "".join(cur).strip():
        out.append("".join(cur).strip())
    return out


@functools.lru_cache(maxsize=64)
def _call_re(name: str) -> re.Pattern:
    return re.compile(rf"(?<![\w.>]){re.escape(name)}\s*\(")


def calls(text: str, name: str, lo: int = 0, hi: int | None = None) -> list[tuple[int, list[str]]]:
    """(offset, arguments) of every call `name(...)` in text[lo:hi]."""
    hi = len(text) if hi is None else hi
    out = []
    for m in _call_re(name).finditer(text, lo, hi):
        close = match_paren(text, m.end() - 1)
        if close is None or close > hi:
            continue
        out.append((m.start(), split_args(text[m.end():close])))
    return out


@dataclass(frozen=True)
class Guard:
    kind: str          # "if", "else", "for", "while", "switch", "do", "return-if" (an early return)
    cond: str
    at: int            # offset of the keyword


def guards(text: str, fn: Function, offset: int) -> list[Guard]:
    """The control statements around `offset` in fn's body (outermost first), and the
    `if ( C ) return ...;` statements before it at the same or an enclosing block level."""
    lo, hi = fn.body
    out: list[Guard] = []
    _walk_block(text, lo + 1, hi, offset, out)
    return out


def _walk_block(text: str, pos: int, end: int, target: int, out: list[Guard]) -> bool:
    """Statements of a block in text[pos:end]; True once the one holding target is found."""
    while pos < end:
        pos = _skip_space(text, pos, end)
        if pos >= end:
            return False
        stmt_end, inner = _statement(text, pos, end)
        if pos <= target <= stmt_end:
            for g in inner:
                out.append(g)
                if g.kind in ("block",):
                    pass
            return _descend(text, pos, stmt_end, target, out)
        m = re.match(r"if\s*\(", text[pos:])
        if m:
            close = match_paren(text, pos + m.end() - 1)
            rest = text[close + 1:stmt_end + 1] if close else ""
            if close and re.fullmatch(r"\s*(?:\{\s*)?return\b[^;]*;\s*\}?\s*", rest):
                out.append(Guard("return-if", " ".join(text[pos + m.end():close].split()), pos))
        pos = stmt_end + 1
    return False


def _descend(text: str, pos: int, stmt_end: int, target: int, out: list[Guard]) -> bool:
    """Into one statement that holds target: control headers become guards."""
    if text[pos] == "{":
        return _walk_block(text, pos + 1, stmt_end, target, out)
    m = re.match(r"(if|for|while|switch)\s*\(", text[pos:])
    if m:
        close = match_paren(text, pos + m.end() - 1)
        cond = " ".join(text[pos + m.end():close].split())
        body = _skip_space(text, close + 1, stmt_end + 1)
        body_end, _ = _statement(text, body, stmt_end + 1)
        if m.group(1) == "if" and target > body_end:
            els = _skip_space(text, body_end + 1, stmt_end + 1)
            out.append(Guard("else", cond, pos))
            els = _skip_space(text, els + 4, stmt_end + 1)   # past 'else'
            return _descend(text, els, stmt_end, target, out)
        out.append(Guard(m.group(1), cond, pos))
        if target < body:
            return True   # the target is in the condition itself
        return _descend(text, body, body_end, target, out)
    if text.startswith("do", pos) and re.match(r"do\b", text[pos:]):
        out.append(Guard("do", "", pos))
        body = _skip_space(text, pos + 2, stmt_end + 1)
        body_end, _ = _statement(text, body, stmt_end + 1)
        return _descend(text, body, body_end, target, out)
    return True       # a plain statement


def _skip_space(text: str, pos: int, end: int) -> int:
    while pos < end and text[pos] in " \t\n\r":
        pos += 1
    return pos


def _statement(text: str, pos: int, end: int) -> tuple[int, list[Guard]]:
    """Offset of the last character of the statement starting at pos."""
    if text[pos] == "{":
        close = match_brace(text, pos)
        return (close if close is not None else end - 1), []
    m = re.match(r"(if|for|while|switch)\s*\(", text[pos:])
    if m:
        close = match_paren(text, pos + m.end() - 1)
        if close is None:
            return end - 1, []
        body = _skip_space(text, close + 1, end)
        body_end, _ = _statement(text, body, end)
        if m.group(1) == "if":
            nxt = _skip_space(text, body_end + 1, end)
            if re.match(r"else\b", text[nxt:nxt + 5]):
                other = _skip_space(text, nxt + 4, end)
                return _statement(text, other, end)[0], []
        return body_end, []
    if re.match(r"do\b", text[pos:pos + 3]):
        body = _skip_space(text, pos + 2, end)
        body_end, _ = _statement(text, body, end)
        semi = text.find(";", body_end + 1, end)
        return (semi if semi >= 0 else end - 1), []
    # a plain statement: up to ';' at depth 0 (a label 'x:' is its own statement)
    depth, i = 0, pos
    while i < end:
        c = text[i]
        if c in "([{":
            if c == "{" and depth == 0:
                close = match_brace(text, i)   # an initialiser or a statement expression
                i = close if close is not None else end
                i += 1
                continue
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c in "\"'":
            j = text.find(c, i + 1)
            while j > 0 and text[j - 1] == "\\":
                j = text.find(c, j + 1)
            i = j if j > 0 else end
        elif c == ";" and depth == 0:
            return i, []
        i += 1
    return end - 1, []


# ---- guards per vendor ------------------------------------------------------------------------------

VENDORS = ("intel", "amd")


def evaluate(cond: str, atoms: dict[str, dict[str, bool]], where: Location, what: str) -> dict[str, bool]:
    """A condition made of the given atoms (name -> value per vendor), IS_ENABLED(CONFIG_X) of the
    configuration (in atoms too), numbers, !, && and ||: its value per vendor."""
    text = " ".join(cond.split())
    names = sorted(atoms, key=len, reverse=True)
    pattern = "|".join(re.escape(n) for n in names)
    out = {}
    for vendor in VENDORS:
        expr = text
        if pattern:
            expr = re.sub(rf"(?<![\w.>]){pattern}(?!\w)" if pattern else r"(?!x)x",
                          lambda m: f" {int(atoms[m.group(0)][vendor])} ", expr)
        py = expr.replace("&&", " and ").replace("||", " or ")
        py = re.sub(r"!(?!=)", " not ", py)
        if not re.fullmatch(r"[\s()0-9]*(?:(?:and|or|not)[\s()0-9]*)*", py):
            raise InputError(where, f"not understood: {what} runs under `{text}`; pvsmt reads only "
                                    f"{', '.join(sorted(atoms))}, numbers, !, && and || there")
        try:
            out[vendor] = bool(eval(py, {"__builtins__": {}}))  # noqa: S307 (digits and and/or/not only)
        except SyntaxError:
            raise InputError(where, f"not understood: {what} runs under `{text}`") from None
    return out
