"""`pvsmt extract`: read Xen's IDT and fast-system-call setup from a source tree, write a spec.

Two layouts (reference 2.1-2.4):

* 4.21 and later: the IDT is built at compile time from `GEN(vector, symbol, dpl,
  autogen|manual)` lines in xen/arch/x86/include/asm/gen-idt.h, written out by the
  `write_idte` macro of xen/arch/x86/x86_64/entry.S (its type word gives the gate type).
* 4.20 and earlier: runtime gate writes, `set_intr_gate` / `set_swint_gate` in
  xen/arch/x86/traps.c and `_set_gate(idt_table + VECTOR, SYS_DESC_irq_gate, DPL, ...)`
  in xen/arch/x86/pv/traps.c.

Files are run through a real C preprocessor (pcpp) with the configuration's CONFIG_*
symbols defined, so `#ifdef CONFIG_PV`, GEN16's token pasting and the DPLn macros are
what the compiler would see; its `#line` markers give every fact its file and line.
Whatever the extractor needs and does not find in the expected shape is an InputError
naming the file and line, never a guess.
"""

from __future__ import annotations

import functools
import io
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..lang import shipped
from ..errors import InputError, Location
from . import source as xs
from .releases import model_of
from ..report.wording import shown_path as shown

GEN_IDT = Path("xen/arch/x86/include/asm/gen-idt.h")
ENTRY_S = Path("xen/arch/x86/x86_64/entry.S")
TRAPS_C = Path("xen/arch/x86/traps.c")
PV_TRAPS_C = Path("xen/arch/x86/pv/traps.c")

#: The configurations a tree is extracted for when no .config is given.
VARIANTS = {"pv": {"CONFIG_PV": True, "CONFIG_PV32": True},
            "pv32-n": {"CONFIG_PV": True, "CONFIG_PV32": False},
            "pv-n": {"CONFIG_PV": False, "CONFIG_PV32": False}}


@dataclass(frozen=True)
class Gate:
    """One IDT entry as the source writes it."""

    vector: int
    dpl: int
    symbol: str
    where: Location
    text: str              # the source line, for the citation
    type: str = "interrupt"
    manual: bool = True    # the entry point is a named handler, not an autogen stub


@dataclass
class Extraction:
    tree: Path
    layout: str                          # "gen-idt" (4.21+) or "runtime-gates" (<= 4.20)
    config: dict[str, bool]
    config_source: str
    gates: dict[int, Gate] = field(default_factory=dict)
    gate_type: tuple[str, Location, str] | None = None   # the type every gate gets, where, source text
    efer_sce: tuple[bool, Location, str] | None = None
    sysenter_cs: dict[str, tuple[str, Location, str]] = field(default_factory=dict)  # vendor -> (null|nonnull, ...)
    gate_audit: tuple[bool, Location | None, str] | None = None
    fred: tuple[Location, str] | None = None           # FRED delivery asked for: where the tree has it
    pv32_off_with_fred: tuple[Location, str] | None = None
    swint_emul: tuple[str, Location, str] | None = None   # plus2 | decoded, where, source
    release: tuple[int, int, str] | None = None
    fred_support: "FredSupport | None" = None
    notes: list[str] = field(default_factory=list)


# ---- reading the configuration ----------------------------------------------------------

def read_config(path: Path) -> dict[str, bool]:
    """CONFIG_PV and CONFIG_PV32 from a Kconfig .config (`CONFIG_X=y`, `# CONFIG_X is not set`)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(str(path), f"cannot read the configuration: {exc.strerror or exc}") from None
    values: dict[str, bool] = {}
    for n, line in enumerate(text.splitlines(), 1):
        m = re.match(r"\s*(CONFIG_\w+)=(\S+)", line) or re.match(r"\s*#\s*(CONFIG_\w+) is not set", line)
        if m:
            values[m.group(1)] = len(m.groups()) == 2 and m.group(2) in ("y", "m")
    if "CONFIG_PV" not in values:
        raise InputError(str(path), "CONFIG_PV is neither set nor 'is not set' in this configuration")
    if "CONFIG_PV32" not in values and values["CONFIG_PV"]:
        raise InputError(str(path), "CONFIG_PV32 is neither set nor 'is not set' in this configuration")
    # Kconfig writes no line for PV32 when PV is off: PV32 depends on PV (xen/arch/x86/Kconfig)
    out = {"CONFIG_PV": values["CONFIG_PV"], "CONFIG_PV32": values.get("CONFIG_PV32", False)}
    if out["CONFIG_PV32"] and not out["CONFIG_PV"]:
        raise InputError(str(path), "CONFIG_PV32=y needs CONFIG_PV=y (xen/arch/x86/Kconfig: PV32 depends on PV)")
    return out


def configuration(path: Path | None, variant: str | None) -> tuple[dict[str, bool], str]:
    """The configuration to extract for: a .config, or a named variant (default `pv`), and its name."""
    if path is not None and variant is not None:
        raise InputError("--variant", "give either --config or --variant, not both")
    if path is not None:
        return read_config(path), str(path)
    name = variant or "pv"
    return VARIANTS[name], f"variant {name} ({config_text(VARIANTS[name])})"


def config_text(config: dict[str, bool]) -> str:
    """`CONFIG_PV=y, CONFIG_PV32=n`."""
    return ", ".join(f"{k}={'y' if v else 'n'}" for k, v in config.items())


# ---- reading the tree's files --------------------------------------------------------------------

def read_lines(path: Path) -> list[str] | None:
    """A file's lines, or None if it does not exist; each file is read once per version of it."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return list(_read(str(path), stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=256)
def _read(path: str, _mtime: int, _size: int) -> tuple[str, ...]:
    try:
        return tuple(Path(path).read_text().splitlines())
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read: {exc}") from None


def _lines(path: Path, why: str = "the extractor reads the MSR setup here") -> list[str]:
    lines = read_lines(path)
    if lines is None:
        raise InputError(str(path), f"not found: {why}")
    return lines


def source_line(where: Location) -> str:
    lines = read_lines(Path(where.path)) or []
    return lines[where.line - 1].strip() if 0 < where.line <= len(lines) else ""


# ---- preprocessing ---------------------------------------------------------------------------

def preprocess(tree: Path, rel: Path, config: dict[str, bool]) -> list[tuple[Location, str]]:
    """The file as the compiler sees it under `config`: (location in the original, text) per line.
    Each version of a file is preprocessed once per configuration (traps.c is read for its gate
    writes, the #GP handler and the guards of the MSR writes)."""
    path = tree / rel
    _lines(path, f"the extractor reads {rel} in this layout")   # there and readable, else an InputError
    stat = path.stat()
    return list(_preprocessed(str(path), str(rel), tuple(config.items()), stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=32)
def _preprocessed(path_text: str, rel: str, config: tuple[tuple[str, bool], ...], mtime: int,
                  size: int) -> tuple[tuple[Location, str], ...]:
    from pcpp import Preprocessor
    path = Path(path_text)
    source = "\n".join(_read(path_text, mtime, size)) + "\n"
    pp = Preprocessor()
    pp.line_directive = "#line"
    for name, on in config:
        if on:
            pp.define(f"{name} 1")
    errors: list[str] = []
    pp.on_error = lambda file, line, msg: errors.append(f"{file}:{line}: {msg}")
    pp.on_include_not_found = _skip_include
    pp.parse(source, rel)
    out = io.StringIO()
    try:
        pp.write(out)
    except Exception as exc:  # pcpp raises plain exceptions on malformed directives
        raise InputError(str(path), f"the C preprocessor failed: {exc}") from None
    if errors:
        raise InputError(str(path), f"the C preprocessor failed: {errors[0]}")
    return tuple(_with_lines(out.getvalue(), path))


def _skip_include(*_args):
    """Headers are not read: the extractor needs only what the file itself says."""
    from pcpp.preprocessor import Action, OutputDirective
    raise OutputDirective(Action.IgnoreAndRemove)


def _with_lines(text: str, path: Path) -> list[tuple[Location, str]]:
    lines, line = [], 1
    for raw in text.splitlines():
        m = re.match(r'#line (\d+)', raw)
        if m:
            line = int(m.group(1))
            continue
        if raw.strip():
            lines.append((Location(str(path), line), raw))
        line += 1
    return lines


# ---- 4.21+: gen-idt.h and write_idte --------------------------------------------------------------

GEN = re.compile(r"\bGEN\s*\(([^()]*)\)")


def gen_idt(tree: Path, ex: Extraction) -> None:
    """The preprocessed gen-idt.h's GEN(vector, symbol, dpl, kind) lines: the n-th one is IDT slot n
    (entry.S's write_idte appends one 16-byte entry per line; the vector argument places nothing,
    it only goes to an autogen stub)."""
    found = []
    for where, text in preprocess(tree, GEN_IDT, ex.config):
        for m in GEN.finditer(text):
            found.append((_gen(m.group(1), where), m.group(1)))
    if len(found) != 256:
        where = found[-1][0].where if found else Location(str(tree / GEN_IDT))
        raise InputError(where, f"{len(found)} GEN lines after preprocessing: the IDT has 256 slots and "
                                f"write_idte gives one per line, in order (entry.S checks the size)")
    for slot, (gate, args) in enumerate(found):
        if gate.vector != slot:
            autogen = args.split(",")[-1].strip() not in ("0", "manual")
            if autogen and (gate.vector < 0x20) != (slot < 0x20):
                raise InputError(gate.where, f"not understood: GEN({args.strip()}) is IDT slot {slot:#04x} "
                                             f"(its position) but its autogen stub is built for vector "
                                             f"{gate.vector:#04x}, on the other side of 0x20")
            ex.notes.append(f"{in_tree(ex, gate.where)}: GEN({gate.vector:#04x}, ...) is IDT slot {slot:#04x}: "
                            f"the position places it, not the vector argument")
            gate = Gate(slot, gate.dpl, gate.symbol, gate.where, gate.text, gate.type, gate.manual)
        ex.gates[slot] = gate


def _gen(args: str, where: Location) -> Gate:
    parts = [p.strip() for p in args.split(",")]
    if len(parts) != 4:
        raise InputError(where, f"expected GEN(vector, symbol, dpl, autogen|manual), found GEN({args})")
    vector, symbol, dpl, kind = parts
    try:
        v = int(vector, 0)
    except ValueError:
        raise InputError(where, f"GEN's vector '{vector}' is not a number") from None
    if not 0 <= v <= 255:
        raise InputError(where, f"GEN's vector {vector} is not an IDT vector (0-255)")
    if not dpl.isdigit() or int(dpl) > 3:
        raise InputError(where, f"GEN({vector}, ...)'s DPL '{dpl}' is not 0-3 after preprocessing "
                                f"(gen-idt.h defines DPL0, DPL1 and DPL3)")
    if kind not in ("0", "1"):
        raise InputError(where, f"GEN({vector}, ...)'s kind '{kind}' is not autogen (1) or manual (0) "
                                f"after preprocessing")
    return Gate(v, int(dpl), symbol, where, source_line(where), manual=kind == "0")


def _require_all_vectors(ex: Extraction, path: Path) -> None:
    missing = [v for v in range(256) if v not in ex.gates]
    if missing:
        raise InputError(str(path), f"no gate for vector(s) {', '.join(f'{v:#04x}' for v in missing[:8])}"
                                    f"{' ...' if len(missing) > 8 else ''}: every IDT vector must be generated")


WRITE_IDTE = re.compile(r"\.macro\s+write_idte\b")
TYPE_WORD = re.compile(r"(0x[0-9a-fA-F]{3,4})\s*\|\s*\(?\s*\\?dpl\s*<<\s*13")


def write_idte(tree: Path, ex: Extraction) -> None:
    """The gate type every GEN entry gets: write_idte's type word (0x8e00 | dpl << 13).  Checked by
    shape: write_idte emits 16 bytes, and the GEN defined before entry.S includes gen-idt.h
    reaches it with GEN's symbol and DPL."""
    path = tree / ENTRY_S
    lines = _lines(path, f"the 4.21+ layout writes its IDT in {ENTRY_S}")
    start = next((i for i, l in enumerate(lines) if WRITE_IDTE.search(l)), None)
    if start is None:
        raise InputError(str(path), "no '.macro write_idte': cannot tell the gates' type")
    end = next((i for i in range(start, len(lines)) if re.match(r"\s*\.endm\b", lines[i])), None)
    if end is None:
        raise InputError(Location(str(path), start + 1), "write_idte: no .endm")
    size = 0
    for line in lines[start + 1:end]:
        m = re.match(r"\s*\.(byte|word|short|long|int|quad)\s+(.*?)\s*(?:/\*.*)?$", line)
        if m:
            size += {"byte": 1, "word": 2, "short": 2, "long": 4, "int": 4, "quad": 8}[m.group(1)] * \
                len([x for x in m.group(2).split(",") if x.strip()])
    if size != 16:
        raise InputError(Location(str(path), start + 1), f"not understood: write_idte emits {size} bytes, "
                                                         f"not one 16-byte IDT entry")
    _gen_reaches_write_idte(path, lines)
    for i in range(start, end):
        m = TYPE_WORD.search(lines[i])
        if m:
            word = int(m.group(1), 16)
            where = Location(str(path), i + 1)
            ex.gate_type = (_gate_type(word, where), where, lines[i].strip())
            ex.gates = {v: replace(g, type=ex.gate_type[0]) for v, g in ex.gates.items()}
            return
    raise InputError(Location(str(path), start + 1), "write_idte: no type word of the form "
                                                     "'$(0xNN00 | (\\dpl << 13))' found before .endm")


def _gen_reaches_write_idte(path: Path, lines: list[str]) -> None:
    """`#define GEN(v, s, d, a) MACRO ...` before `#include <asm/gen-idt.h>`, and MACRO (or
    write_idte itself) calls `write_idte SYM, DPL` with GEN's 2nd and 3rd arguments."""
    inc = next((i for i, l in enumerate(lines) if re.match(r"\s*#\s*include\s*[<\"]asm/gen-idt\.h", l)), None)
    if inc is None:
        raise InputError(str(path), "not understood: entry.S does not include asm/gen-idt.h")
    where = Location(str(path), inc + 1)
    define = None
    for i in range(inc - 1, -1, -1):
        m = re.match(r"\s*#\s*define\s+GEN\s*\(([^)]*)\)\s*(\w+)\s*(.*)$", lines[i])
        if m:
            define = (m, i)
            break
    if define is None:
        raise InputError(where, "not understood: no #define GEN(...) before this #include")
    m, i = define
    params = [x.strip() for x in m.group(1).split(",")]
    macro, rest = m.group(2), m.group(3)
    if len(params) != 4:
        raise InputError(Location(str(path), i + 1), "not understood: GEN is not defined with 4 parameters")
    args = [a for a in re.split(r"[\s,]+", rest.strip()) if a]
    if macro == "write_idte":
        ok = args[:2] == [params[1], params[2]]
    else:
        named = dict(a.split("=", 1) for a in args if "=" in a)
        start = next((j for j, l in enumerate(lines) if re.match(rf"\s*\.macro\s+{macro}\b", l)), None)
        ok = False
        if start is not None:
            mparams = [x.split("=")[0] for x in re.split(r"[\s,]+", lines[start].split(macro, 1)[1].strip()) if x]
            positional = [a for a in args if "=" not in a]
            bound = {**dict(zip(mparams, positional)), **named}
            for line in lines[start + 1:]:
                if re.match(r"\s*\.endm\b", line):
                    break
                w = re.match(r"\s*write_idte\s+\\(\w+)\s*,\s*\\(\w+)", line)
                if w:
                    ok = bound.get(w.group(1)) == params[1] and bound.get(w.group(2)) == params[2]
    if not ok:
        raise InputError(Location(str(path), i + 1), "not understood: GEN's symbol and DPL do not reach "
                                                     "write_idte as `write_idte \\sym, \\dpl`")


def _gate_type(word: int, where: Location) -> str:
    """Bits 15 (present), 8-11 (type) of a gate's type word: 0xE interrupt, 0xF trap (64-bit)."""
    if not word & 0x8000:
        raise InputError(where, f"type word {word:#06x} has the present bit clear")
    kind = (word >> 8) & 0xF
    if kind == 0xE:
        return "interrupt"
    if kind == 0xF:
        return "trap"
    raise InputError(where, f"type word {word:#06x}: type {kind:#x} is not a 64-bit interrupt (0xE) "
                            f"or trap (0xF) gate")


# ---- the spec -----------------------------------------------------------------------------------------

ENTRIES = {"entry_int80": "int80", "int80_direct_trap": "int80", "entry_int82": "int82",
           "compat_hypercall": "int82", "entry_int82_compat": "int82"}


def entry_of(gate: Gate) -> str:
    """What handles a vector: an exception (< 0x20), the common interrupt stub (an autogen entry),
    or a named handler pvsmt models; any other named handler is not understood."""
    if gate.vector < 0x20:
        return "exception"
    if not gate.manual:
        return "irq"
    kind = ENTRIES.get(gate.symbol)
    if kind is None:
        raise InputError(gate.where, f"not understood: vector {gate.vector:#04x}'s handler is {gate.symbol}, none of "
                                     f"{', '.join(sorted(ENTRIES))} or an autogen stub")
    return kind


def in_tree(ex: Extraction, where: Location) -> str:
    """`xen/arch/x86/...:LINE`: a citation relative to the tree, as a patch names it."""
    return f"{_in_tree(where.path, str(ex.tree), os.getcwd())}:{where.line}"


@functools.lru_cache(maxsize=1024)
def _in_tree(path: str, tree: str, _cwd: str) -> str:
    """Remembered per file, tree and working directory (relative paths resolve from it): the
    report cites each of the 256 gates, and resolving a path costs a system call per component."""
    try:
        return str(Path(path).resolve().relative_to(Path(tree).resolve()))
    except ValueError:
        return str(Path(path))


# ---- the fast-system-call MSRs (reference 2.4) ----------------------------------------------------------

TRAMPOLINE_S = Path("xen/arch/x86/boot/trampoline.S")
SYSENTER_FILES = (Path("xen/arch/x86/traps-setup.c"), Path("xen/arch/x86/x86_64/traps.c"), TRAPS_C)
AMD_C = Path("xen/arch/x86/cpu/amd.c")


def efer_sce(tree: Path, ex: Extraction) -> None:
    """EFER.SCE from trampoline_efer's OR-mask: `EFER_SCE * IS_ENABLED(CONFIG_PV)`, or plain EFER_SCE."""
    path = tree / TRAMPOLINE_S
    lines = _lines(path)
    start = next((i for i, l in enumerate(lines) if re.search(r"\btrampoline_efer\b", l) and "GLOBAL" in l), None)
    if start is None:
        raise InputError(str(path), "no GLOBAL(trampoline_efer): cannot tell whether EFER.SCE is set")
    i, expr = start + 1, ""
    while i < len(lines):
        expr += " " + lines[i].strip().rstrip("\\")
        if not lines[i].rstrip().endswith("\\"):
            break
        i += 1
    where = Location(str(path), start + 2)
    if ".long" not in expr and ".quad" not in expr:
        raise InputError(where, f"trampoline_efer: expected a .long OR-mask, found '{expr.strip()}'")
    cond = re.search(r"EFER_SCE\s*\*\s*IS_ENABLED\(\s*(CONFIG_\w+)\s*\)", expr)
    if cond:
        value = ex.config.get(cond.group(1), False)
    else:
        value = re.search(r"\bEFER_SCE\b", expr) is not None
    ex.efer_sce = (value, where, " ".join(expr.split()))


ARCH = Path("xen/arch/x86")
DESCRIPTOR_TABLES_C = Path("xen/arch/x86/pv/descriptor-tables.c")


def _arch_files(tree: Path, suffixes=(".c", ".h", ".S")) -> list[Path]:
    """Every source file under xen/arch/x86, in a stable order."""
    return xs.source_files(tree / ARCH, suffixes)


def _grep(tree: Path, pattern: re.Pattern, words: tuple[str, ...],
          suffixes=(".c", ".h", ".S")) -> list[tuple[Path, int, str]]:
    """(file, line number, stripped line) of every line under xen/arch/x86 `pattern` matches, in
    files it matches.  Every match of `pattern` holds one of `words` (literal text without a line
    break): a file or line holding none of them is passed over without running the pattern."""
    out = []
    for path in _arch_files(tree, suffixes):
        text = xs._text(path)
        if not any(w in text for w in words):
            continue
        lines = text.splitlines()
        near = sorted({n for w in words for n, line in enumerate(lines) if w in line})
        hits = [(path, n + 1, lines[n].strip()) for n in near if pattern.search(lines[n])]
        if hits and pattern.search(text):
            out += hits
    return out


def _in_function(tree: Path, path: Path, line: int, config) -> tuple[xs.Source, xs.Function, int] | None:
    """The preprocessed file, the function holding `line` and the offset of that line, or None when
    the preprocessor drops the line (an #if the configuration turns off)."""
    src = xs.Source.of(preprocess(tree, path.relative_to(tree), config))
    offset = next((st for st, w in zip(src.starts, src.wheres) if w.line == line), None)
    if offset is None:
        return None
    for fn in xs.functions(src):
        if fn.body[0] < offset < fn.body[1]:
            return src, fn, offset
    raise InputError(Location(str(path), line), "not understood: this write is outside any function")


def _atoms(tree: Path, ex: Extraction) -> dict[str, dict[str, bool]]:
    """What a guard may name: IS_ENABLED(CONFIG_*) of the configuration and cpu_has_sep per vendor."""
    sep_amd = _amd_sep_cleared(tree) is None
    # the preprocessor has turned IS_ENABLED(CONFIG_PV) into IS_ENABLED(1) where CONFIG_PV is on
    atoms = {f"IS_ENABLED({k})": {v: False for v in xs.VENDORS} for k, on in ex.config.items() if not on}
    atoms["IS_ENABLED(1)"] = {v: True for v in xs.VENDORS}
    atoms["cpu_has_sep"] = {"intel": True, "amd": sep_amd}
    return atoms


def _runs_under(tree: Path, ex: Extraction, path: Path, line: int, what: str) -> dict[str, bool]:
    """Per vendor, whether the statement at path:line runs: its enclosing ifs (the else branch
    negated) and the early `if ( C ) return;` before it, evaluated; loops are not understood."""
    found = _in_function(tree, path, line, ex.config)
    if found is None:
        return {v: False for v in xs.VENDORS}
    src, fn, offset = found
    runs = {v: True for v in xs.VENDORS}
    for g in xs.guards(src.text, fn, offset):
        where = src.where(g.at)
        if g.kind not in ("if", "else", "return-if"):
            raise InputError(Location(str(path), line), f"not understood: {what} sits in a `{g.kind}` ({where})")
        value = xs.evaluate(g.cond, _atoms(tree, ex), where, what)
        for v in xs.VENDORS:
            runs[v] = runs[v] and (value[v] if g.kind == "if" else not value[v])
    return runs


SYSENTER_WRITE = re.compile(r"\bwrmsr\w*\s*\(\s*MSR_IA32_SYSENTER_CS\s*,")


def sysenter_cs(tree: Path, ex: Extraction) -> None:
    """MSR_SYSENTER_CS: every wrmsr of it under xen/arch/x86 (one expected), its value
    (__HYPERVISOR_CS: non-null; 0: null) and the guard it runs under, per vendor
    (cpu_has_sep is false on AMD parts whose cpu/amd.c clears X86_FEATURE_SEP)."""
    sites = _grep(tree, SYSENTER_WRITE, ("MSR_IA32_SYSENTER_CS",), (".c",))
    if not sites:
        raise InputError(str(tree / ARCH), "no wrmsr(MSR_IA32_SYSENTER_CS, ...) under xen/arch/x86: cannot tell "
                                           "what SYSENTER_CS holds")
    if len(sites) > 1:
        raise InputError(Location(str(sites[1][0]), sites[1][1]), f"not understood: MSR_IA32_SYSENTER_CS is "
                                                                  f"written here and at {sites[0][0]}:{sites[0][1]}")
    path, line, text = sites[0]
    where = Location(str(path), line)
    m = re.search(r"SYSENTER_CS\s*,\s*([^,)]+)", text)
    value = m.group(1).strip() if m else ""
    if value == "__HYPERVISOR_CS":
        written = "nonnull"
    elif xs.integer(value) == 0:
        written = "null"
    else:
        raise InputError(where, f"not understood: SYSENTER_CS written with `{value}` (pvsmt reads __HYPERVISOR_CS or 0)")
    runs = _runs_under(tree, ex, path, line, "the SYSENTER_CS write")
    cleared = _amd_sep_cleared(tree)
    for vendor in xs.VENDORS:
        if runs[vendor]:
            ex.sysenter_cs[vendor] = (written, where, text)
        elif vendor == "amd" and cleared is not None and runs["intel"]:
            ex.sysenter_cs[vendor] = ("null", *cleared)
        else:
            ex.sysenter_cs[vendor] = ("null", where, text)


def _amd_sep_cleared(tree: Path) -> tuple[Location, str] | None:
    path = tree / AMD_C
    for i, line in enumerate(read_lines(path) or []):
        if re.search(r"clear\w*\(\s*X86_FEATURE_SEP", line):
            return Location(str(path), i + 1), line.strip()
    return None


EFER_WRITE = re.compile(r"\bwrite_efer\s*\(|\bwrmsr\w*\s*\(\s*MSR_EFER\s*,")
EFER_TOUCH = re.compile(r"\btrampoline_efer\b")


def efer_later_writes(tree: Path, ex: Extraction) -> None:
    """Every other write of EFER under xen/arch/x86 and every change of trampoline_efer: each must
    be understood as leaving SCE alone, or one that sets or clears it is read (unguarded)."""
    for path, line, text in _grep(tree, EFER_WRITE, ("write_efer", "MSR_EFER")):
        where = Location(str(path), line)
        if re.match(r"(/\*|\*|//)", text):
            continue              # a comment
        m = re.search(r"\bwrite_efer\s*\((.*)\)\s*;", text) or re.search(r"MSR_EFER\s*,\s*(.*)\)\s*;", text)
        if re.match(r"\s*(static\s+inline\s+)?void\s+write_efer\s*\(", text) or path.suffix == ".h" and \
                "write_efer" in "".join(read_lines(path)[max(0, line - 5):line]) and m and m.group(1).strip() == "val":
            continue          # write_efer's own definition
        if m is None:
            raise InputError(where, f"not understood: an EFER write `{text}`")
        arg = " ".join(m.group(1).split())
        if arg == "read_efer()":
            continue
        op = re.fullmatch(r"read_efer\(\)\s*([|&])\s*(~?)\s*\(?\s*([\w\s|]+?)\s*\)?", arg)
        if op:
            flags = {f.strip() for f in op.group(3).split("|")}
            if "EFER_SCE" not in flags:
                continue
            value = op.group(1) == "|" and not op.group(2)
            runs = _runs_under(tree, ex, path, line, "this EFER write")
            if not all(runs.values()):
                raise InputError(where, "not understood: an EFER.SCE write that runs only on some CPUs")
            ex.efer_sce = (value, where, text)
            continue
        var = re.fullmatch(r"\w+", arg)
        if var and any(re.search(rf"\b{arg}\s*\|=\s*trampoline_efer\b", l)
                       for l in read_lines(path)[max(0, line - 10):line]):
            continue          # efer |= trampoline_efer; wrmsrl(MSR_EFER, efer): the boot mask again
        raise InputError(where, f"not understood: EFER written with `{arg}`: pvsmt reads read_efer() | FLAGS, "
                                f"read_efer() & ~FLAGS, or a value ORed with trampoline_efer")
    for path, line, text in _grep(tree, EFER_TOUCH, ("trampoline_efer",)):
        where = Location(str(path), line)
        if re.match(r"(/\*|\*|//|#\s*(define|include|if|endif|else))", text):
            continue              # a comment or a directive
        if path.suffix == ".S":
            ins = re.match(r"\s*(or[bwlq]?)\s+(.*)", text)
            if re.match(r"\s*(GLOBAL|ENTRY|DATA)\s*\(\s*trampoline_efer\s*\)", text):
                continue
            if ins:
                src_op = ins.group(2).split(",")[0]
                if "trampoline_efer" in src_op or "EFER_SCE" not in ins.group(2):
                    continue       # reads the mask, or ORs in another bit
            raise InputError(where, f"not understood: `{text}` changes trampoline_efer")
        m = re.search(r"trampoline_efer\s*\)?\s*(\|=|&=|\^=|=(?!=))\s*([^;]*)", text)
        if m is None:
            continue              # a declaration or a read
        if m.group(1) == "|=" and "EFER_SCE" not in m.group(2):
            continue
        raise InputError(where, f"not understood: `{text}` changes trampoline_efer's EFER.SCE")


DESCRIPTOR_CHECK = re.compile(r"^\s*(?:static\s+)?(?:bool|int)\s+check_descriptor\s*\(", re.M)


def gate_audit(tree: Path, ex: Extraction) -> None:
    """Xen's audit of guest descriptors (check_descriptor) clears a present call gate's DPL (reference
    3.6), wherever under xen/arch/x86 it is defined (pv/descriptor-tables.c; x86_64/mm.c in 4.14).
    Only its presence is read here: the function's body is not checked."""
    if not ex.config["CONFIG_PV"]:  # no PV guests: no guest descriptor tables, nothing is audited
        ex.gate_audit = (False, None, "CONFIG_PV=n: no PV guest, no guest descriptor table to audit")
        return
    sites = _grep(tree, DESCRIPTOR_CHECK, ("check_descriptor",), (".c",))
    if len(sites) != 1:
        raise InputError(str(tree / DESCRIPTOR_TABLES_C) if not sites else Location(str(sites[1][0]), sites[1][1]),
                         f"{'no' if not sites else 'more than one'} check_descriptor() definition under "
                         f"xen/arch/x86: cannot tell whether guest call gates are audited")
    path, line, text = sites[0]
    ex.gate_audit = (True, Location(str(path), line), text)


FRED_PARAM = re.compile(r'\bboolean_param\s*\(\s*"fred"\s*,\s*(\w+)\s*\)')


@dataclass(frozen=True)
class FredSupport:
    """Whether the tree can deliver events with FRED, and its default per vendor."""

    param: Location           # boolean_param("fred", VAR): the command line turns it on
    variable: str
    default: dict[str, bool]  # vendor -> FRED by default (on hardware with FRED)
    default_where: Location
    text: str


def fred_support(tree: Path) -> FredSupport | None:
    """FRED is possible when a `fred` command-line option sets a variable that, when true, sets
    X86_FEATURE_XEN_FRED; its default is the variable's initialiser, or, for -1, what
    `if ( VAR == -1 ) VAR = EXPR;` makes of it per vendor (not a PV shim)."""
    params = _grep(tree, FRED_PARAM, ('"fred"',), (".c",))
    if not params:
        return None
    path, line, text = params[0]
    var = FRED_PARAM.search(text).group(1)
    body = xs._text(path)
    blocks = [body[m.end():(xs.match_brace(body, m.end() - 1) or m.end())]
              for m in re.finditer(rf"\bif\s*\(\s*{var}\s*\)\s*\{{", body)]
    if not any(re.search(r"\bX86_FEATURE_XEN_FRED\b", b) for b in blocks):
        raise InputError(Location(str(path), line), f"not understood: `{var}` is the fred option, but no "
                                                    f"`if ( {var} )` sets X86_FEATURE_XEN_FRED in this file")
    lines = body.splitlines()
    init = next(((i, m) for i, l in enumerate(lines)
                 if (m := re.search(rf"\b{var}\s*=\s*(-?\d+)\s*;", l)) and not l.startswith((" ", "\t"))), None)
    if init is None:
        raise InputError(Location(str(path), line), f"not understood: no initialiser `{var} = N;` at file scope")
    value = int(init[1].group(1))
    where, text_at = Location(str(path), init[0] + 1), lines[init[0]].strip()
    default = {v: bool(value) for v in xs.VENDORS}
    if value == -1:
        m = re.search(rf"\bif\s*\(\s*{var}\s*==\s*-1\s*\)\s*\n?\s*{var}\s*=\s*([^;]+);", body)
        if m is None:
            raise InputError(where, f"not understood: {var} starts at -1 but no `if ( {var} == -1 ) {var} = ...;` "
                                    f"resolves it")
        n = body[:m.start()].count("\n") + 1
        where = Location(str(path), n)
        text_at = " ".join(m.group(0).split())
        atoms = {"pv_shim": {v: False for v in xs.VENDORS}, "cpu_has_fred": {v: True for v in xs.VENDORS},
                 "boot_cpu_data.x86_vendor == X86_VENDOR_AMD": {"intel": False, "amd": True},
                 "boot_cpu_data.x86_vendor == X86_VENDOR_INTEL": {"intel": True, "amd": False}}
        default = xs.evaluate(m.group(1), atoms, where, f"{var}'s default")
    return FredSupport(Location(str(path), line), var, default, where, text_at)


def fred(tree: Path, ex: Extraction) -> None:
    """--fred on: the tree must be able to enable FRED (fred_support).  Xen forces opt_pv32 off with
    FRED (reference 2.5): read where the tree does so, else PV32 stays as configured."""
    support = fred_support(tree)
    if support is None:
        release, where = xs.release_lines(tree)
        raise InputError(where, f"--fred on: Xen {xs.release_text(release)} cannot enable FRED: no "
                                f'boolean_param("fred", ...) under xen/arch/x86')
    ex.fred = (support.param, source_line(support.param))
    path = Path(support.param.path)
    for i, line in enumerate(read_lines(path) or []):
        if re.search(r"\bopt_pv32\s*=\s*(0|false)\b", line):
            ex.pv32_off_with_fred = (Location(str(path), i + 1), line.strip())
            return
    ex.notes.append(f"{in_tree(ex, support.param)}: no 'opt_pv32 = 0' in this file: PV32 guests are kept as "
                    f"configured under FRED")


XEC_IDT = re.compile(r"\bif\s*\(\s*regs->error_code\s*&\s*X86_XEC_IDT\s*\)")


def swint_emul(tree: Path, ex: Extraction) -> None:
    """How the #GP handler resumes a permitted INT $N, from the block testing the error code's IDT
    bit: `regs->rip += 2` (plus2), or a call to a function that decodes the instruction's length
    (x86_insn_length) and adds it (decoded)."""
    src = xs.Source.of(preprocess(tree, TRAPS_C, ex.config))
    m = XEC_IDT.search(src.text)
    if m is None:
        if not ex.config["CONFIG_PV"]:
            return
        raise InputError(str(tree / TRAPS_C), "not understood: no `if ( regs->error_code & X86_XEC_IDT )` "
                                              "block (the #GP handler's INT $N emulation)")
    brace = src.text.find("{", m.end())
    end = xs.match_brace(src.text, brace)
    block = src.text[brace:end]
    plus = re.search(r"regs->rip\s*\+=\s*2\s*;", block)
    if plus:
        where = src.where(brace + plus.start())
        ex.swint_emul = ("plus2", where, source_line(where))
        return
    for call in re.finditer(r"\b(\w+)\s*\(\s*regs\s*\)\s*;", block):
        name = call.group(1)
        for path, line, text in _grep(tree, re.compile(rf"^\s*(?:static\s+)?void\s+{name}\s*\(", re.M), (name,),
                                      (".c",)):
            body = "\n".join((read_lines(path) or [])[line - 1:line + 60])
            if re.search(r"\bx86_insn_length\s*\(", body) and re.search(r"regs->rip\s*\+=\s*len\b", body):
                where = src.where(brace + call.start())
                ex.swint_emul = ("decoded", where, f"{source_line(where)} -> {in_tree(ex, Location(str(path), line))}")
                return
    raise InputError(src.where(m.start()), "not understood: the INT $N emulation here neither adds 2 to rip "
                                           "nor calls a function adding the decoded length")


def extract(tree: Path, config: dict[str, bool], config_source: str, with_fred: bool = False) -> Extraction:
    """The IDT (and, where found, the MSR setup) of the tree under one configuration."""
    with xs.one_listing():   # the facts searched for everywhere under xen/arch/x86 share one listing
        return _extract(tree, config, config_source, with_fred)


def _extract(tree: Path, config: dict[str, bool], config_source: str, with_fred: bool) -> Extraction:
    if not (tree / "xen").is_dir():
        raise InputError(str(tree), "not a Xen source tree: no xen/ directory")
    if (tree / GEN_IDT).exists():
        ex = Extraction(tree, "gen-idt", config, config_source)
        gen_idt(tree, ex)
        write_idte(tree, ex)
    elif (tree / TRAPS_C).exists() and not any(re.match(r"\s*#\s*include\s*[<\"]asm/gen-idt\.h", l)
                                               for l in read_lines(tree / ENTRY_S) or []):
        ex = Extraction(tree, "runtime-gates", config, config_source)
        runtime_gates(tree, ex)
    else:
        _missing_layout(tree)
    ex.release = xs.tree_release(tree)
    efer_sce(tree, ex)
    efer_later_writes(tree, ex)
    sysenter_cs(tree, ex)
    gate_audit(tree, ex)
    swint_emul(tree, ex)
    ex.fred_support = fred_support(tree)
    if with_fred:
        fred(tree, ex)
    return ex


# ---- <= 4.20: runtime gate writes ------------------------------------------------------------------

GATE_TYPES = {14: "interrupt", 15: "trap"}  # SYS_DESC_irq_gate, SYS_DESC_trap_gate (SDM Vol.3A 'IDT Descriptors')
IDT_DECL = re.compile(r"\bidt_entry_t\s+((?:__\w+\s*(?:\([^()]*\))?\s*)*)([A-Za-z_]\w*)\s*\[\s*([^\]]+)\]\s*;")
BASE_WRITER = "_set_gate"      # desc.h: _set_gate(gate_addr, type, dpl, addr) writes one IDT entry

MAKEFILE = Path("xen/arch/x86/Makefile")


def pv_built(tree: Path, config: dict[str, bool]) -> bool:
    """Whether xen/arch/x86/pv/ is compiled: `obj-$(CONFIG_PV) += pv/` (or `obj-y += pv/`) in the Makefile."""
    path = tree / MAKEFILE
    for line in _lines(path):
        m = re.match(r"\s*obj-(?:\$\((CONFIG_\w+)\)|(y))\s*\+=\s*pv/", line)
        if m:
            return True if m.group(2) else config.get(m.group(1), False)
    raise InputError(str(path), "no 'obj-... += pv/' line: cannot tell whether pv/traps.c is built")


def _missing_layout(tree: Path):
    """Neither layout's IDT source is there: name the line that refers to the missing file, if any."""
    entry = tree / ENTRY_S
    for i, line in enumerate(read_lines(entry) or []):
        if re.match(r"\s*#\s*include\s*[<\"]asm/gen-idt\.h[>\"]", line):
            raise InputError(Location(str(entry), i + 1), f"includes asm/gen-idt.h, but {GEN_IDT} is not "
                                                          f"in the tree")
    raise InputError(str(tree), f"neither {GEN_IDT} (Xen 4.21+) nor {TRAPS_C} (Xen 4.20 and earlier) "
                                f"is in this tree")


@dataclass
class _Write:
    """A gate write: the vector, type, DPL and handler expressions, where, and what guards it."""

    vector: str
    type: str
    dpl: str
    handler: str
    where: Location
    fn: xs.Function
    src: xs.Source
    offset: int


def runtime_gates(tree: Path, ex: Extraction) -> None:
    """traps.c's and pv/traps.c's gate writes, found by shape: the IDT array is the `idt_entry_t
    NAME[N]` traps.c declares; every `_set_gate(&NAME[v] or NAME + v, type, dpl, handler)` is a write,
    a function passing its own parameters on is a helper whose calls are writes.  Explicit writes
    (the last one to a vector wins), then the loop over all vectors fills those its table has an
    entry for.  A write under any other condition, or into another table, is not understood."""
    files = [(TRAPS_C, xs.Source.of(preprocess(tree, TRAPS_C, ex.config)))]
    if pv_built(tree, ex.config):
        files.append((PV_TRAPS_C, xs.Source.of(preprocess(tree, PV_TRAPS_C, ex.config))))
    table = _idt_array(tree, files[0][1])
    writes = _gate_writes(files, table)
    consts = {rel: xs.Constants(tree, tree / rel, ex.config) for rel, _ in files}
    names: dict[Path, set[str]] = {rel: {"X86_NR_VECTORS"} for rel, _ in files}
    for w in writes:   # one preprocessor run per file for every name the writes use
        names[TRAPS_C if w.src is files[0][1] else PV_TRAPS_C] |= {_bare(x) for x in (w.vector, w.type, w.dpl)}
    for rel, todo in names.items():
        consts[rel].resolve(todo)
    fill = None
    for w in writes:
        rel = TRAPS_C if w.src is files[0][1] else PV_TRAPS_C
        c = consts[rel]
        guard = xs.guards(w.src.text, w.fn, w.offset)
        gtype = GATE_TYPES.get(c.value(_bare(w.type), w.where, "gate type"))
        if gtype is None:
            raise InputError(w.where, f"gate type {w.type}: not a 64-bit interrupt (14) or trap (15) gate")
        dpl = c.value(_bare(w.dpl), w.where, "DPL")
        if not 0 <= dpl <= 3:
            raise InputError(w.where, f"DPL {w.dpl} is not 0-3")
        loop = _fill_loop(w, guard, c)
        if loop:
            if fill is not None:
                raise InputError(w.where, f"not understood: a second loop filling the IDT (first at {fill[1]})")
            fill = ((dpl, gtype), w.where, w.src.text[w.offset:w.src.text.find(";", w.offset)].strip())
            continue
        conditional = [g for g in guard if g.kind != "return-if"]
        if conditional:
            g = conditional[-1]
            raise InputError(w.where, f"not understood: this gate write runs under `{g.kind} ( {g.cond} )` "
                                      f"({w.src.where(g.at)})")
        v = c.value(_bare(w.vector), w.where, "vector")
        if not 0 <= v <= 255:
            raise InputError(w.where, f"vector {w.vector} = {v} is not an IDT vector")
        symbol = _bare(w.handler).lstrip("&").strip()
        ex.gates[v] = Gate(v, dpl, symbol, w.where, source_line(w.where), type=gtype, manual=True)
    if fill is None:
        raise InputError(str(tree / TRAPS_C), "no loop over every vector writing the remaining gates "
                                              "(trap_init's autogen_entrypoints loop)")
    (dpl, gtype), where, text = fill
    for v in range(256):
        if v not in ex.gates:
            ex.gates[v] = Gate(v, dpl, f"autogen[{v:#04x}]", where, source_line(where), type=gtype, manual=False)
    types = {g.type for g in ex.gates.values()}
    ex.gate_type = (types.pop() if len(types) == 1 else "mixed", where, text)


def _idt_array(tree: Path, src: xs.Source) -> str:
    """The name of the `idt_entry_t NAME[N];` array traps.c defines (exactly one)."""
    found = [(m.group(2), m.start()) for m in IDT_DECL.finditer(src.text)]
    if len(found) != 1:
        where = src.where(found[1][1]) if len(found) > 1 else str(tree / TRAPS_C)
        raise InputError(where, f"not understood: {len(found)} `idt_entry_t NAME[N];` arrays defined in "
                                f"{TRAPS_C} (the IDT is the one)")
    return found[0][0]


def _gate_writes(files, table: str) -> list[_Write]:
    """Every write reaching _set_gate, with helpers resolved through their parameters."""
    fns = [(src, fn) for _, src in files for fn in xs.functions(src)]
    # a writer: name -> its 4 argument expressions (vector, type, dpl, handler) over its own
    # parameters, written as {0}, {1}, ... for the caller's arguments
    writers: dict[str, tuple[str, ...]] = {}
    concrete: dict[tuple[int, int], _Write] = {}
    changed = True
    while changed:
        changed = False
        for src, fn in fns:
            if fn.name in writers:
                continue
            lo, hi = fn.body
            found = [(BASE_WRITER, c) for c in xs.calls(src.text, BASE_WRITER, lo, hi)]
            for name in writers:
                found += [(name, c) for c in xs.calls(src.text, name, lo, hi)]
            for name, (offset, args) in sorted(found, key=lambda x: x[1][0]):
                where = src.where(offset)
                if name == BASE_WRITER:
                    exprs = _base_args(args, table, where)
                else:
                    if len(args) != _arity(writers[name]):
                        raise InputError(where, f"not understood: {name}() called with {len(args)} arguments")
                    exprs = tuple(e.format(*[f"({a})" if re.search(r"\W", a.strip()) else a.strip()
                                             for a in args]) for e in writers[name])
                uses = [p for p in fn.params if any(re.search(rf"(?<![\w.>]){p}\b", e) for e in exprs)]
                if uses:
                    templ = exprs
                    for i, p in enumerate(fn.params):
                        templ = tuple(re.sub(rf"(?<![\w.>]){p}\b", "{%d}" % i, e) for e in templ)
                    writers[fn.name] = templ
                    for key in [k for k, w in concrete.items() if w.fn is fn]:
                        del concrete[key]
                    changed = True
                    break
                concrete[(id(src), offset)] = _Write(*exprs, where, fn, src, offset)
    order = {id(src): i for i, (_, src) in enumerate(files)}
    return [w for _, w in sorted(concrete.items(), key=lambda kv: (order[kv[0][0]], kv[0][1]))]


def _bare(expr: str) -> str:
    """An expression without the parentheses a helper's argument got around it."""
    expr = expr.strip()
    while expr.startswith("(") and xs.match_paren(expr, 0) == len(expr) - 1:
        expr = expr[1:-1].strip()
    return expr


def _arity(exprs: tuple[str, ...]) -> int:
    return max((int(n) + 1 for e in exprs for n in re.findall(r"\{(\d+)\}", e)), default=0)


def _base_args(args: list[str], table: str, where: Location) -> tuple[str, str, str, str]:
    if len(args) != 4:
        raise InputError(where, f"not understood: _set_gate() with {len(args)} arguments (expected gate, type, dpl, addr)")
    m = re.fullmatch(rf"&\s*{table}\s*\[(.+)\]", args[0].strip(), re.S) or \
        re.fullmatch(rf"{table}\s*\+\s*(.+)", args[0].strip(), re.S)
    if m is None:
        raise InputError(where, f"not understood: a gate written into `{args[0].strip()}`, not into the IDT "
                                f"array {table} (&{table}[v] or {table} + v)")
    return (m.group(1).strip(), args[1].strip(), args[2].strip(), args[3].strip())


def _fill_loop(w: _Write, guard, consts) -> bool:
    """`for ( V = 0; V < N; ++V ) { if ( T[V] ) ... write(V, T[V]) }` with N = 256: the fill."""
    v = _bare(w.vector)
    if not re.fullmatch(r"[A-Za-z_]\w*", v) or xs.integer(v) is not None:
        return False
    loops = [g for g in guard if g.kind == "for"]
    ifs = [g for g in guard if g.kind == "if"]
    if len(loops) != 1 or len(ifs) != 1 or len([g for g in guard if g.kind != "return-if"]) != 2:
        return False
    m = re.fullmatch(rf"{v}\s*=\s*0\s*;\s*{v}\s*<\s*(\w+)\s*;\s*(?:\+\+\s*{v}|{v}\s*\+\+)", loops[0].cond)
    h = re.fullmatch(rf"(\w+)\s*\[\s*{v}\s*\]", _bare(w.handler))
    if not m or not h or ifs[0].cond.strip() != h.group(0):
        return False
    return consts.value(m.group(1), w.where, "loop bound") == 256


#: The spec whose `default` lines (for pvsmt explain; not facts) an extracted spec repeats.
DEFAULTS_SPEC = shipped.directory("specs") / "xen.spec"


def spec_text(ex: Extraction, name: str, loader) -> str:
    """The extraction as a .spec file: every fact cites the tree's file and line.  `loader`
    (lang.parse.SpecLoader) reads DEFAULTS_SPEC for the defaults."""
    defaults_from = loader.load(DEFAULTS_SPEC)
    pv, pv32 = ex.config["CONFIG_PV"], ex.config["CONFIG_PV32"]
    if ex.fred is not None and ex.pv32_off_with_fred is not None:
        pv32 = False
    guests = "pv64, pv32" if pv32 else "pv64" if pv else "none"
    delivery = "FRED" if ex.fred is not None else "IDT"
    release = xs.release_text(ex.release)
    model = model_of(ex.release)
    out = [f"# Extracted by `pvsmt extract` from {shown(ex.tree)} ({ex.layout} layout),",
           f"# configuration: {ex.config_source}: {config_text(ex.config)}",
           f"# xen-release: {release} (xen/Makefile); release model: "
           + (f"specs/{model}.spec" if model else "none (before 4.17)"),
           *_fred_support_lines(ex),
           "# Every fact cites the tree's file and line.  Regenerate rather than edit.", "",
           f'spec {name} "Xen {release} extracted from {shown(ex.tree)}, {delivery} delivery, '
           f'{config_text(ex.config)}"', "",
           *_delivery_lines(ex),
           "set abi = code", '    cite "the behaviour of Xen\'s source, as the model states it"',
           *_swint_lines(ex),
           f"set guest = {guests}", f'    cite "{ex.config_source}: CONFIG_PV, CONFIG_PV32"']
    if ex.fred is not None and ex.pv32_off_with_fred is not None:
        where, text = ex.pv32_off_with_fred
        out.append(f'    cite "{in_tree(ex, where)} ({_quote(text)}): no PV32 guests with FRED"')
    out += [f"# note: {n}" for n in ex.notes] + [""]
    gtype, twhere, ttext = ex.gate_type
    for run in runs(ex, gtype):
        first, last = run[0], run[-1]
        vectors = f"{first.vector:#04x}" if first is last else f"{first.vector:#04x}..{last.vector:#04x}"
        kind = first.type if ex.layout == "runtime-gates" else gtype
        out.append(f"idt {vectors} present=1 dpl={first.dpl} type={kind} entry={entry_of(first)}")
        out += [f'    cite "{line}"' for line in _run_cites(ex, run)]
        if ex.layout == "gen-idt":
            out.append(f'    cite "{in_tree(ex, twhere)} ({_quote(ttext)})"')
    out.append("")
    out += _msr_lines(ex)
    out += ["", "# ---- defaults for pvsmt explain (not facts), as in " + shown(defaults_from.path)]
    for facts in defaults_from.defaults.values():
        for f in facts:
            if f.statement and f.statement not in out:
                out.append(f.statement)
    return "\n".join(out) + "\n"


def runs(ex: Extraction, gtype: str) -> list[list[Gate]]:
    """Consecutive vectors the same file gives the same DPL, type and entry: one declaration each
    (a spec with 256 declarations would make every proof's provenance core needlessly slow)."""
    def key(g: Gate) -> tuple:   # one source line per run: a counterexample cites each vector's own line
        return (g.dpl, g.type, entry_of(g), g.where.path, g.where.line)
    out: list[list[Gate]] = []
    for gate in sorted(ex.gates.values(), key=lambda g: g.vector):
        if out and key(out[-1][-1]) == key(gate) and out[-1][-1].vector + 1 == gate.vector:
            out[-1].append(gate)
        else:
            out.append([gate])
    return out


def _run_cites(ex: Extraction, run: list[Gate]) -> list[str]:
    """One citation per source line of the run, in line order: `file:LINE (text)`."""
    seen: dict[int, Gate] = {}
    for gate in run:
        seen.setdefault(gate.where.line, gate)
    return [f"{in_tree(ex, g.where)} ({_quote(g.text)})" for _, g in sorted(seen.items())]


def _swint_lines(ex: Extraction) -> list[str]:
    if ex.swint_emul is None:
        return []
    value, where, text = ex.swint_emul
    return [f"set swint_emul = {value}", f'    cite "{in_tree(ex, where)} ({_quote(text)})"']


def _fred_support_lines(ex: Extraction) -> list[str]:
    f = ex.fred_support
    if f is None:
        return ["# fred: not possible (no fred command-line option)"]
    return [f"# fred: possible ({in_tree(ex, f.param)}, {f.variable}); default: "
            + ", ".join(f"{v} {'on' if f.default[v] else 'off'}" for v in xs.VENDORS)
            + f" ({in_tree(ex, f.default_where)})"]


def _delivery_lines(ex: Extraction) -> list[str]:
    if ex.fred is None:
        return ["delivery idt", '    cite "pvsmt extract --fred off: IDT delivery (FRED is a boot-time choice, opt_fred)"']
    where, text = ex.fred
    return ["delivery fred", f'    cite "{in_tree(ex, where)} ({_quote(text)}): pvsmt extract --fred on"']


def _fred_msr_lines(ex: Extraction) -> list[str]:
    """Under FRED, init_fred writes neither SYSENTER MSR: SYSENTER_CS is whatever it was (reference 3.8)."""
    where, text = ex.fred
    return ["set sysenter_cs = null, nonnull",
            f'    cite "{in_tree(ex, where)} ({_quote(text)}): with FRED, init_fred writes no SYSENTER MSR"',
            '    uncertain "whether FRED applies SYSENTER\'s null-CS #GP(0) check is not stated (reference 3.8)"',
            "default sysenter_cs = null", "default sysenter_cs = nonnull when vendor == intel"]


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _msr_lines(ex: Extraction) -> list[str]:
    out = []
    if ex.efer_sce is not None:
        value, where, text = ex.efer_sce
        out += [f"set efer.sce = {int(value)}", f'    cite "{in_tree(ex, where)} ({_quote(text)})"']
    if ex.gate_audit is not None:
        value, where, text = ex.gate_audit
        source = in_tree(ex, where) if where is not None else ex.config_source
        out += [f"set gate_audit = {int(value)}", f'    cite "{source} ({_quote(text)})"']
    if ex.fred is not None:
        return out + _fred_msr_lines(ex)
    for vendor, (value, where, text) in sorted(ex.sysenter_cs.items()):
        out += [f"set sysenter_cs = {value} when vendor == {vendor}",
                f'    cite "{in_tree(ex, where)} ({_quote(text)})"']
    return out
