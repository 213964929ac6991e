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
import re
from dataclasses import dataclass, field
from pathlib import Path

from . import shipped
from .errors import InputError, Location
from .report import shown_path as shown

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
    """The file as the compiler sees it under `config`: (location in the original, text) per line."""
    from pcpp import Preprocessor
    path = tree / rel
    source = "\n".join(_lines(path, f"the extractor reads {rel} in this layout")) + "\n"
    pp = Preprocessor()
    pp.line_directive = "#line"
    for name, on in config.items():
        if on:
            pp.define(f"{name} 1")
    errors: list[str] = []
    pp.on_error = lambda file, line, msg: errors.append(f"{file}:{line}: {msg}")
    pp.on_include_not_found = _skip_include
    pp.parse(source, str(rel))
    out = io.StringIO()
    try:
        pp.write(out)
    except Exception as exc:  # pcpp raises plain exceptions on malformed directives
        raise InputError(str(path), f"the C preprocessor failed: {exc}") from None
    if errors:
        raise InputError(str(path), f"the C preprocessor failed: {errors[0]}")
    return _with_lines(out.getvalue(), path)


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
    """Every GEN(vector, symbol, dpl, kind) the preprocessed gen-idt.h leaves, with its line."""
    for where, text in preprocess(tree, GEN_IDT, ex.config):
        for m in GEN.finditer(text):
            gate = _gen(m.group(1), where)
            if gate.vector in ex.gates:
                raise InputError(where, f"vector {gate.vector:#04x} is generated twice (first at "
                                        f"{ex.gates[gate.vector].where})")
            ex.gates[gate.vector] = gate
    _require_all_vectors(ex, tree / GEN_IDT)


def _gen(args: str, where: Location) -> Gate:
    parts = [p.strip() for p in args.split(",")]
    if len(parts) != 4:
        raise InputError(where, f"expected GEN(vector, symbol, dpl, autogen|manual), found GEN({args})")
    vector, symbol, dpl, _kind = parts
    try:
        v = int(vector, 0)
    except ValueError:
        raise InputError(where, f"GEN's vector '{vector}' is not a number") from None
    if not 0 <= v <= 255:
        raise InputError(where, f"GEN's vector {vector} is not an IDT vector (0-255)")
    if not dpl.isdigit() or int(dpl) > 3:
        raise InputError(where, f"GEN({vector}, ...)'s DPL '{dpl}' is not 0-3 after preprocessing "
                                f"(gen-idt.h defines DPL0, DPL1 and DPL3)")
    return Gate(v, int(dpl), symbol, where, source_line(where))


def _require_all_vectors(ex: Extraction, path: Path) -> None:
    missing = [v for v in range(256) if v not in ex.gates]
    if missing:
        raise InputError(str(path), f"no gate for vector(s) {', '.join(f'{v:#04x}' for v in missing[:8])}"
                                    f"{' ...' if len(missing) > 8 else ''}: every IDT vector must be generated")


WRITE_IDTE = re.compile(r"\.macro\s+write_idte\b")
TYPE_WORD = re.compile(r"(0x[0-9a-fA-F]{3,4})\s*\|\s*\(?\s*\\?dpl\s*<<\s*13")


def write_idte(tree: Path, ex: Extraction) -> None:
    """The gate type every GEN entry gets: write_idte's type word (0x8e00 | dpl << 13)."""
    path = tree / ENTRY_S
    lines = _lines(path, f"the 4.21+ layout writes its IDT in {ENTRY_S}")
    start = next((i for i, l in enumerate(lines) if WRITE_IDTE.search(l)), None)
    if start is None:
        raise InputError(str(path), "no '.macro write_idte': cannot tell the gates' type")
    for i in range(start, min(start + 30, len(lines))):
        if ".endm" in lines[i]:
            break
        m = TYPE_WORD.search(lines[i])
        if m:
            word = int(m.group(1), 16)
            where = Location(str(path), i + 1)
            ex.gate_type = (_gate_type(word, where), where, lines[i].strip())
            return
    raise InputError(Location(str(path), start + 1), "write_idte: no type word of the form "
                                                     "'$(0xNN00 | (\\dpl << 13))' found before .endm")


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

def entry_of(gate: Gate) -> str:
    if gate.vector < 0x20:
        return "exception"
    return {"entry_int80": "int80", "entry_int82": "int82", "int80_direct_trap": "int80",
            "compat_hypercall": "int82", "entry_int82_compat": "int82"}.get(gate.symbol, "irq")


def in_tree(ex: Extraction, where: Location) -> str:
    """`xen/arch/x86/...:LINE`: a citation relative to the tree, as a patch names it."""
    try:
        rel = Path(where.path).resolve().relative_to(ex.tree.resolve())
    except ValueError:
        rel = Path(where.path)
    return f"{rel}:{where.line}"


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


def sysenter_cs(tree: Path, ex: Extraction) -> None:
    """MSR_SYSENTER_CS: written with __HYPERVISOR_CS under `if ( cpu_has_sep )` (Intel), never on AMD
    parts whose cpu/amd.c clears X86_FEATURE_SEP; nothing is written without CONFIG_PV when the
    function returns early on !IS_ENABLED(CONFIG_PV)."""
    for rel in SYSENTER_FILES:
        lines = read_lines(tree / rel) or []
        path = tree / rel
        for i, line in enumerate(lines):
            if re.search(r"wrmsr\w*\s*\(\s*MSR_IA32_SYSENTER_CS\s*,\s*__HYPERVISOR_CS", line):
                where = Location(str(path), i + 1)
                written = ex.config["CONFIG_PV"] or not _returns_without_pv(lines, i)
                intel = "nonnull" if written else "null"
                ex.sysenter_cs["intel"] = (intel, where, line.strip())
                ex.sysenter_cs["amd"] = _amd_sep(tree, intel, where, line.strip())
                return
    raise InputError(str(tree / SYSENTER_FILES[0]), "no wrmsr(MSR_IA32_SYSENTER_CS, __HYPERVISOR_CS, ...) in "
                                                   + ", ".join(str(r) for r in SYSENTER_FILES))


def _returns_without_pv(lines: list[str], at: int) -> bool:
    """Whether the function around line `at` returns early when CONFIG_PV is off."""
    for j in range(at, -1, -1):
        if re.match(r"^[a-z_].*\(.*\)\s*$", lines[j]) or lines[j].startswith("{"):
            body = lines[j:at]
            return any(re.search(r"!\s*IS_ENABLED\(\s*CONFIG_PV\s*\)", l) for l in body)
    return False


def _amd_sep(tree: Path, intel: str, where: Location, text: str) -> tuple[str, Location, str]:
    path = tree / AMD_C
    for i, line in enumerate(read_lines(path) or []):
        if re.search(r"clear\w*\(\s*X86_FEATURE_SEP", line):
            return ("null", Location(str(path), i + 1), line.strip())
    return (intel, where, text)


DESCRIPTOR_TABLES_C = Path("xen/arch/x86/pv/descriptor-tables.c")


def gate_audit(tree: Path, ex: Extraction) -> None:
    """Xen's audit of guest descriptors (check_descriptor) clears a present call gate's DPL (reference
    3.6).  Only its presence is read here: the function's body is not checked."""
    if not ex.config["CONFIG_PV"]:  # no PV guests: no guest descriptor tables, nothing is audited
        ex.gate_audit = (False, None, "CONFIG_PV=n: no PV guest, no guest descriptor table to audit")
        return
    path = tree / DESCRIPTOR_TABLES_C
    for i, line in enumerate(_lines(path)):
        if re.search(r"\bbool\s+check_descriptor\s*\(", line):
            ex.gate_audit = (True, Location(str(path), i + 1), line.strip())
            return
    raise InputError(str(path), "no check_descriptor(): cannot tell whether guest call gates are audited")


TRAPS_SETUP_C = Path("xen/arch/x86/traps-setup.c")


def fred(tree: Path, ex: Extraction) -> None:
    """--fred on: the tree must support FRED (`opt_fred` in traps-setup.c).  Xen forces opt_pv32
    off with FRED (reference 2.5): read where the tree does so, else PV32 stays as configured."""
    path = tree / TRAPS_SETUP_C
    lines = _lines(path, "FRED support (opt_fred) lives here in Xen 4.21+, and --fred on needs it")
    at = next((i for i, l in enumerate(lines) if re.search(r"\bopt_fred\b", l)), None)
    if at is None:
        raise InputError(str(path), "--fred on: this tree has no opt_fred: it cannot deliver events with FRED")
    ex.fred = (Location(str(path), at + 1), lines[at].strip())
    for i, line in enumerate(lines):
        if re.search(r"\bopt_pv32\s*=\s*(0|false)\b", line):
            ex.pv32_off_with_fred = (Location(str(path), i + 1), line.strip())
            return
    ex.notes.append(f"{TRAPS_SETUP_C}: no 'opt_pv32 = 0' found: PV32 guests are kept as configured under FRED")


def extract(tree: Path, config: dict[str, bool], config_source: str, with_fred: bool = False) -> Extraction:
    """The IDT (and, where found, the MSR setup) of the tree under one configuration."""
    if not (tree / "xen").is_dir():
        raise InputError(str(tree), "not a Xen source tree: no xen/ directory")
    if (tree / GEN_IDT).exists():
        ex = Extraction(tree, "gen-idt", config, config_source)
        gen_idt(tree, ex)
        write_idte(tree, ex)
    elif (tree / TRAPS_C).exists():
        ex = Extraction(tree, "runtime-gates", config, config_source)
        runtime_gates(tree, ex)
    else:
        _missing_layout(tree)
    efer_sce(tree, ex)
    sysenter_cs(tree, ex)
    gate_audit(tree, ex)
    if with_fred:
        fred(tree, ex)
    return ex


# ---- <= 4.20: runtime gate writes ------------------------------------------------------------------

HEADERS = (Path("xen/arch/x86/include/asm/x86-defns.h"), Path("xen/arch/x86/include/asm/irq-vectors.h"),
           Path("xen/arch/x86/include/asm/desc.h"), Path("xen/include/asm-x86/x86-defns.h"),
           Path("xen/include/asm-x86/irq_vectors.h"), Path("xen/include/asm-x86/desc.h"))
GATE_TYPES = {14: "interrupt", 15: "trap"}  # SYS_DESC_irq_gate, SYS_DESC_trap_gate (SDM Vol.3A 'IDT Descriptors')
HELPER = re.compile(r"\b(set_\w+_gate)\s*\(\s*unsigned int n\s*,\s*void \*\s*addr\s*\)")
CALL = re.compile(r"\b(set_\w+_gate)\s*\(\s*([A-Za-z_]\w*)\s*,\s*&?\s*([A-Za-z_]\w*)")
SET_GATE = re.compile(r"\b_set_gate\s*\(\s*(?:&\s*idt_table\s*\[\s*(\w+)\s*\]|idt_table\s*\+\s*(\w+))\s*,"
                      r"\s*(\w+)\s*,\s*(\w+)\s*,\s*&?\s*(\w+)", re.S)


MAKEFILE = Path("xen/arch/x86/Makefile")


def pv_built(tree: Path, config: dict[str, bool]) -> bool:
    """Whether xen/arch/x86/pv/ is compiled: `obj-$(CONFIG_PV) += pv/` (or `obj-y += pv/`) in the Makefile."""
    path = tree / MAKEFILE
    for line in _lines(path):
        m = re.match(r"\s*obj-(?:\$\((CONFIG_\w+)\)|(y))\s*\+=\s*pv/", line)
        if m:
            return True if m.group(2) else config.get(m.group(1), False)
    raise InputError(str(path), "no 'obj-... += pv/' line: cannot tell whether pv/traps.c is built")


def symbols(tree: Path) -> dict[str, int]:
    """`#define NAME number` (or another such name) from the headers that name vectors and gate types."""
    raw: dict[str, str] = {}
    for rel in HEADERS:
        for line in read_lines(tree / rel) or []:
            m = re.match(r"\s*#\s*define\s+(\w+)\s+\(?\s*(\w+)\s*\)?\s*(/\*.*)?$", line)
            if m:
                raw[m.group(1)] = m.group(2)

    def value(name: str, depth: int = 0):
        text = raw.get(name, name)
        try:
            return int(text, 0)
        except ValueError:
            return value(text, depth + 1) if depth < 8 and text in raw else None
    return {name: v for name in raw if (v := value(name)) is not None}


def _number(token: str, syms: dict[str, int], where: Location, what: str) -> int:
    try:
        return int(token, 0)
    except ValueError:
        if token in syms:
            return syms[token]
    raise InputError(where, f"{what} '{token}' is neither a number nor defined in "
                            f"{', '.join(str(h) for h in HEADERS[:3])}")


def _missing_layout(tree: Path):
    """Neither layout's IDT source is there: name the line that refers to the missing file, if any."""
    entry = tree / ENTRY_S
    for i, line in enumerate(read_lines(entry) or []):
        if re.match(r"\s*#\s*include\s*[<\"]asm/gen-idt\.h[>\"]", line):
            raise InputError(Location(str(entry), i + 1), f"includes asm/gen-idt.h, but {GEN_IDT} is not "
                                                          f"in the tree")
    raise InputError(str(tree), f"neither {GEN_IDT} (Xen 4.21+) nor {TRAPS_C} (Xen 4.20 and earlier) "
                                f"is in this tree")


def runtime_gates(tree: Path, ex: Extraction) -> None:
    """traps.c's init_idt_traps/trap_init and pv/traps.c's pv_trap_init, in the order Xen runs them:
    explicit writes (the last one to a vector wins), then the autogen loop fills every empty vector."""
    syms = symbols(tree)
    lines = preprocess(tree, TRAPS_C, ex.config)
    helpers = _helpers(lines, syms)
    fill = None
    for where, text in lines:
        for m in CALL.finditer(text):
            name, vector, symbol = m.groups()
            if name not in helpers:
                continue
            if vector == "vector" and "autogen_entrypoints" in text:
                fill = (helpers[name], where, text.strip())
                continue
            v = _number(vector, syms, where, "vector")
            dpl, gtype = helpers[name]
            ex.gates[v] = Gate(v, dpl, symbol, where, source_line(where), type=gtype)
    if pv_built(tree, ex.config):
        for gate in _set_gate_calls(tree, PV_TRAPS_C, ex.config, syms):
            ex.gates[gate.vector] = gate
    if fill is None:
        raise InputError(str(tree / TRAPS_C), "no loop writing autogen_entrypoints[vector] into the "
                                              "remaining vectors (trap_init)")
    (dpl, gtype), where, text = fill
    for v in range(256):
        if v not in ex.gates:
            ex.gates[v] = Gate(v, dpl, f"autogen_entrypoints[{v:#04x}]", where, source_line(where), type=gtype)
    types = {g.type for g in ex.gates.values()}
    ex.gate_type = (types.pop() if len(types) == 1 else "mixed", where, text)


def _helpers(lines, syms) -> dict[str, tuple[int, str]]:
    """The gate-writing helpers and the DPL and type each gives: set_intr_gate (DPL0), set_swint_gate (DPL3),
    read from their bodies (`__set_intr_gate(n, DPL, addr)` over `_set_gate(..., SYS_DESC_irq_gate, dpl, ...)`)."""
    text = "\n".join(t for _, t in lines)
    base = re.search(r"__set_intr_gate\s*\([^)]*\)\s*\{\s*_set_gate\s*\([^,]+,\s*(\w+)\s*,", text)
    if base is None:
        raise InputError(str(lines[0][0].path) if lines else "traps.c",
                         "no __set_intr_gate() writing _set_gate(..., SYS_DESC_*, dpl, addr)")
    kind = syms.get(base.group(1), None)
    gtype = GATE_TYPES.get(kind)
    if gtype is None:
        raise InputError(lines[0][0].path, f"__set_intr_gate writes gate type {base.group(1)}: not a 64-bit "
                                           f"interrupt (14) or trap (15) gate")
    out = {}
    for m in HELPER.finditer(text):
        body = re.match(r"[^{]*\{\s*__set_intr_gate\s*\(\s*n\s*,\s*(\d+)", text[m.end():])
        if body:
            out[m.group(1)] = (int(body.group(1)), gtype)
    if "set_intr_gate" not in out:
        raise InputError(lines[0][0].path, "no set_intr_gate(unsigned int n, void *addr) helper")
    return out


def _set_gate_calls(tree: Path, rel: Path, config, syms) -> list[Gate]:
    """`_set_gate(idt_table + VECTOR, SYS_DESC_irq_gate, DPL, &entry)` calls, which may span lines."""
    lines = preprocess(tree, rel, config)
    text, starts = "", []
    for where, t in lines:
        starts.append((len(text), where))
        text += t + "\n"
    out = []
    for m in SET_GATE.finditer(text):
        where = max((s for s in starts if s[0] <= m.start()), key=lambda s: s[0])[1]
        vector = _number(m.group(1) or m.group(2), syms, where, "vector")
        gtype = GATE_TYPES.get(_number(m.group(3), syms, where, "gate type"))
        if gtype is None:
            raise InputError(where, f"gate type {m.group(3)}: not a 64-bit interrupt (14) or trap (15) gate")
        dpl = _number(m.group(4), syms, where, "DPL")
        if not 0 <= dpl <= 3:
            raise InputError(where, f"DPL {m.group(4)} is not 0-3")
        out.append(Gate(vector, dpl, m.group(5), where, source_line(where), type=gtype))
    return out


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
    out = [f"# Extracted by `pvsmt extract` from {shown(ex.tree)} ({ex.layout} layout),",
           f"# configuration: {ex.config_source}: {config_text(ex.config)}",
           "# Every fact cites the tree's file and line.  Regenerate rather than edit.", "",
           f'spec {name} "Xen extracted from {shown(ex.tree)}, {delivery} delivery, {config_text(ex.config)}"', "",
           *_delivery_lines(ex),
           "set abi = code", '    cite "the behaviour of Xen\'s source, as the model states it"',
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
    def key(g: Gate) -> tuple:
        return (g.dpl, g.type, entry_of(g), g.where.path)
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
            '    uncertain "whether FRED applies SYSENTER\'s null-CS #GP(0) check is not stated (reference 3.8)"']


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
