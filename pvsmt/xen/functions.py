"""What check-xen does not read from a tree: the Xen functions the model encodes, compared by text.

`pvsmt extract` reads the IDT gates, EFER.SCE, SYSENTER_CS, the call-gate audit's presence,
how the #GP handler resumes INT $N (`swint_emul`) and whether FRED can be enabled.  Everything
else a guest-level verdict depends on (the #GP emulation, entry_int80, the callbacks, FRED's
entry_from_pv, ...) is taken from the model (pvsmt/model/xen_idt.py, xen_fred.py), whose rules
describe the code of the releases pvsmt has a spec for.  FUNCTIONS lists those functions, each
with the model rules that encode it (their `cite`s name it).

check-xen compares each function's text in the tree, normalised (comments and whitespace that
does not separate two words removed), with the texts of the same function in the release the
model describes (pvsmt/xen/reference.py, generated from real Xen trees by
scripts/xen-fingerprints.py): a function whose text is none of them is `changed`, and every
verdict resting on it is `unverified` rather than `proved`.  Which verdicts rest on a function:
every guest-level verdict rests on every function the model encodes for its delivery mode (the
prover does not report the model rules a proof used, only the spec facts); hardware-level
verdicts (no guest-layer name) rest on none.  Sound and simple; coarser than it could be.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from . import source as xs


@dataclass(frozen=True)
class Encoded:
    """A Xen function (or macro, or assembler entry point) the model encodes."""

    name: str
    names: tuple[str, ...]        # the name, then older names of the same code
    file: str                     # where master has it (relative to xen/arch/x86), searched first
    modes: tuple[str, ...]        # "idt", "fred": the delivery modes whose verdicts rest on it
    rules: tuple[str, ...]        # the model rules that encode it

    @property
    def kind(self) -> str:
        return "asm" if self.file.endswith(".S") else "c"


IDT, FRED = ("idt",), ("fred",)
BOTH = ("idt", "fred")

FUNCTIONS: tuple[Encoded, ...] = (
    Encoded("do_general_protection", ("do_general_protection",), "traps.c", BOTH,
            ("xen.gp.ext", "xen.gp.idt", "xen.vdpl.deny", "xen.vdpl.allow", "xen.swint.plus2", "xen.gp.gate",
             "xen.gp.zero", "xen.gp.pass", "xen.idt.gp", "xen.fred.gp")),
    Encoded("permit_softint", ("permit_softint",), "include/asm/regs.h", BOTH,
            ("xen.vdpl.deny", "xen.vdpl.allow", "xen.fred.vdpl.deny", "xen.fred.vdpl.allow")),
    Encoded("pv_emulate_sw_interrupt", ("pv_emulate_sw_interrupt",), "pv/emul-priv-op.c", IDT,
            ("xen.emul_swint.not_cd", "xen.emul_swint.rex", "xen.emul_swint.ok")),
    Encoded("pv_emulate_privileged_op", ("pv_emulate_privileged_op",), "pv/emul-priv-op.c", BOTH,
            ("xen.gp.zero",)),
    Encoded("do_trap", ("do_trap",), "traps.c", BOTH,
            ("xen.of", "xen.br", "xen.np", "xen.np.ext", "xen.idt.np", "xen.fred.of", "xen.fred.br", "xen.fred.np")),
    Encoded("do_int3", ("do_int3",), "traps.c", BOTH, ("xen.int3", "xen.int3.debugger", "xen.fred.int3")),
    Encoded("handle_DB", ("handle_DB", "do_debug"), "traps.c", BOTH, ("xen.db", "xen.db.debugger", "xen.fred.db")),
    Encoded("do_invalid_op", ("do_invalid_op",), "traps.c", BOTH,
            ("xen.ud", "xen.ud.sig_read_fault", "xen.idt.ud", "xen.fred.ud")),
    Encoded("emulate_forced_invalid_op", ("emulate_forced_invalid_op",), "pv/emul-inv-op.c", BOTH,
            ("xen.ud", "xen.ud.sig_read_fault")),
    Encoded("do_double_fault", ("do_double_fault",), "traps.c", IDT, ("xen.df",)),
    Encoded("pv_emulate_gate_op", ("pv_emulate_gate_op",), "pv/emul-gate-op.c", IDT,
            ("xen.gp.gate", "xen.emul_gate.decode", "xen.emul_gate.dpl", "xen.emul_gate.not_present",
             "xen.emul_gate.not_present_dpl0", "xen.emul_gate.ok")),
    Encoded("read_gate_descriptor", ("read_gate_descriptor",), "pv/emul-gate-op.c", IDT,
            ("xen.emul_gate.limit", "xen.emul_gate.not_present", "xen.emul_gate.not_present_dpl0")),
    Encoded("check_descriptor", ("check_descriptor",), "pv/descriptor-tables.c", BOTH,
            ("xen.emul_gate.dpl", "xen.callgate.raw")),
    Encoded("entry_int80", ("entry_int80", "int80_direct_trap"), "x86_64/entry.S", IDT,
            ("xen.int80.fast", "xen.int80.slow")),
    Encoded("entry_int82", ("entry_int82",), "x86_64/compat/entry.S", IDT, ("xen.int82.hypercall",)),
    Encoded("do_entry_int82", ("do_entry_int82",), "pv/hypercall.c", IDT, ("xen.int82.hypercall",)),
    Encoded("lstar_enter", ("lstar_enter",), "x86_64/entry.S", IDT, ("xen.lstar.kernel", "xen.lstar.user")),
    Encoded("cstar_enter", ("cstar_enter",), "x86_64/entry.S", IDT, ("xen.cstar.pv64",)),
    Encoded("switch_to_kernel", ("switch_to_kernel",), "x86_64/entry.S", IDT,
            ("xen.lstar.user", "xen.cstar.pv64", "xen.callback", "xen.callback.none_ud")),
    Encoded("sysenter_entry", ("sysenter_entry",), "x86_64/entry.S", IDT,
            ("xen.sysenter", "xen.sysenter.pv64_kernel", "xen.callback.none_gp")),
    Encoded("compat_syscall", ("compat_syscall",), "x86_64/compat/entry.S", IDT,
            ("xen.cstar.pv32", "xen.callback", "xen.callback.none_gp")),
    Encoded("compat_sysenter", ("compat_sysenter",), "x86_64/compat/entry.S", IDT, ("xen.sysenter", "xen.callback")),
    Encoded("create_bounce_frame", ("create_bounce_frame",), "x86_64/entry.S", IDT, ("xen.bounce", "xen.bounce.null")),
    Encoded("compat_create_bounce_frame", ("compat_create_bounce_frame",), "x86_64/compat/entry.S", IDT,
            ("xen.bounce", "xen.bounce.null")),
    Encoded("pv_inject_event", ("pv_inject_event",), "pv/traps.c", BOTH, ("xen.bounce", "xen.bounce.null")),
    Encoded("pv_inject_callback", ("pv_inject_callback",), "pv/traps.c", FRED,
            ("xen.fred.callback", "xen.fred.syscall.user64", "xen.fred.syscall.user32")),
    Encoded("entry_FRED_R3", ("entry_FRED_R3",), "x86_64/entry-fred.S", FRED, ("xen.fred.entry",)),
    Encoded("entry_from_pv", ("entry_from_pv",), "traps.c", FRED,
            ("xen.fred.entry", "xen.fred.sw_int", "xen.fred.sw_int_exception", "xen.fred.vdpl.deny",
             "xen.fred.vdpl.allow", "xen.fred.int3", "xen.fred.of", "xen.fred.db", "xen.fred.gp", "xen.fred.ud",
             "xen.fred.br", "xen.fred.np", "xen.fred.other1", "xen.fred.other2", "xen.fred.syscall.kernel",
             "xen.fred.syscall.user64", "xen.fred.syscall.user32", "xen.fred.callback.none_ud",
             "xen.fred.callback.none_gp", "xen.fred.sysenter", "xen.fred.sysenter.pv64_kernel")),
)

#: Xen-layer rules that encode no function's code: read from the tree by `pvsmt extract` (the
#: gates, the MSR setup, the delivery mode), or a situation rather than code.  With FUNCTIONS
#: this covers every Xen rule of the model (tests/test_check_xen.py checks it).
NOT_CODE: dict[str, str] = {
    "xen.idt": "read from the tree: the IDT gates (gen-idt.h or the gate writes)",
    "xen.idt.exception": "read from the tree: the exception gates",
    "xen.idt.int80": "read from the tree: the gate of 0x80",
    "xen.idt.int82": "read from the tree: the gate of 0x82",
    "xen.idt.sw_at_exception": "read from the tree: which exception gates are DPL3",
    "xen.idt.irq": "read from the tree: the autogen gates' DPL",
    "xen.int82.other": "read from the tree: the gate of 0x82 is DPL1",
    "xen.syscall": "read from the tree: EFER.SCE",
    "xen.sysenter.entry": "read from the tree: SYSENTER_CS",
    "xen.via_idt": "the delivery mode: --fred off",
    "xen.via_fred": "the delivery mode: --fred on (whether the tree can enable FRED is read)",
    "xen.via_doc": "the documented account (specs pv-traps-doc*), not Xen's code",
    "xen.none": "no event reaches Xen",
    "xen.shutdown": "a triple fault: the CPU, not Xen's code",
    "xen.exception.other": "outside the model",
    "xen.fred.other": "outside the model",
    "xen.lstar.pv32": "a PV32 guest runs no 64-bit code",
    "xen.no_debugger": "an assumption (no debugger attached), not code",
}


def functions_for(delivery: str) -> tuple[Encoded, ...]:
    return tuple(f for f in FUNCTIONS if delivery in f.modes)


# ---- reading a function's text ---------------------------------------------------------------

ARCH = Path("xen/arch/x86")
SEARCHED = (ARCH, Path("xen/include/asm-x86"))   # older trees keep the x86 headers here


@dataclass(frozen=True)
class Found:
    """A function's definition in a tree: where, and the fingerprint of its normalised text."""

    path: str           # relative to the tree
    line: int
    fingerprint: str
    text: str           # the normalised text

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


_C_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)


@functools.lru_cache(maxsize=64)
def _blank_comments(text: str, asm: bool) -> str:
    """Comments replaced by spaces (newlines kept, so offsets keep their line).  Cached: a file
    holding several of the functions is blanked once."""
    text = _C_COMMENT.sub(_blank, text)
    if asm:   # gas '#' comments: a '#' starting a line that is not a preprocessor directive
        text = _ASM_COMMENT.sub(lambda m: " " * len(m.group(0)), text)
    return text


_ASM_COMMENT = re.compile(r"(?m)^([ \t]*)#(?![ \t]*(?:if|ifdef|ifndef|else|elif|endif|define|undef|include)\b)[^\n]*")


def _blank(m: re.Match) -> str:
    """Every character of the match but its newlines as a space."""
    return "\n".join(" " * len(part) for part in m.group(0).split("\n"))


def normalise(text: str) -> str:
    """Whitespace removed except one space between two word characters."""
    words = text.split()
    out = []
    for w in words:
        if out and re.match(r"\w", w) and re.search(r"\w$", out[-1]):
            out.append(" ")
        out.append(w)
    return "".join(out)


def fingerprint(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


_OPEN_BRACE = re.compile(r"\s*\{")


def _c_definition(text: str, name: str) -> tuple[int, int] | None:
    """(start, end) of `name(...) { ... }` or `#define name(...) ...` in comment-free text."""
    for m in re.finditer(rf"(?m)^[ \t]*#[ \t]*define[ \t]+{re.escape(name)}\b", text):
        end = m.end()
        while True:
            nl = text.find("\n", end)
            if nl < 0:
                return m.start(), len(text)
            if text[nl - 1] != "\\":
                return m.start(), nl
            end = nl + 1
    for m in re.finditer(rf"(?<![\w.>]){re.escape(name)}\s*\(", text):
        close = xs.match_paren(text, m.end() - 1)
        if close is None:
            continue
        after = _OPEN_BRACE.match(text, close + 1)
        line_start = text.rfind("\n", 0, m.start()) + 1
        if after is None or re.search(r"[=;,(]|\breturn\b", text[line_start:m.start()]):
            continue
        brace = after.end() - 1
        end = xs.match_brace(text, brace)
        if end is not None:
            return line_start, end + 1
    return None


_ASM_START = r"(?m)^(?:(?:FUNC|FUNC_LOCAL|ENTRY|GLOBAL)\(\s*{name}\b[^)]*\)|{name}:)"
_ASM_NEXT = re.compile(r"(?m)^(?:FUNC|FUNC_LOCAL|ENTRY)\(|^[A-Za-z_]\w*:")


def _asm_definition(text: str, name: str) -> tuple[int, int] | None:
    """From `FUNC(name)` / `ENTRY(name)` / `name:` to `END(name)`, else to the next entry point."""
    m = re.search(_ASM_START.format(name=re.escape(name)), text)
    if m is None:
        return None
    end = re.compile(rf"(?m)^END\(\s*{re.escape(name)}\s*\)").search(text, m.end())
    if end is not None:
        return m.start(), end.end()
    nxt = _ASM_NEXT.search(text, m.end())
    return m.start(), nxt.start() if nxt else len(text)


def _candidates(tree: Path, enc: Encoded) -> Iterator[Path]:
    """The master file(s), then every file of the kind under SEARCHED, each once; the directories
    are listed only if the search gets that far."""
    first = [tree / ARCH / enc.file]
    if enc.file.startswith("include/asm/"):   # 4.14-4.16: xen/include/asm-x86/...
        first.append(tree / "xen/include/asm-x86" / enc.file[len("include/asm/"):])
    seen = set()
    for p in first:
        if p.is_file() and p not in seen:
            seen.add(p)
            yield p
    suffixes = (".S",) if enc.kind == "asm" else (".c", ".h")
    for top in SEARCHED:
        if (tree / top).is_dir():
            for p in xs.source_files(tree / top, suffixes):
                if p not in seen:
                    seen.add(p)
                    yield p


def find(tree: Path, enc: Encoded) -> Found | None:
    """The function's definition (its first name found, the master file first), or None."""
    with xs.one_listing():
        return _find(tree, enc)


def _find(tree: Path, enc: Encoded) -> Found | None:
    for name in enc.names:
        for path in _candidates(tree, enc):
            raw = xs._text(path)
            if name not in raw:
                continue
            text = _blank_comments(raw, enc.kind == "asm")
            span = (_asm_definition if enc.kind == "asm" else _c_definition)(text, name)
            if span is None:
                continue
            body = normalise(text[span[0]:span[1]])
            line = raw.count("\n", 0, span[0]) + 1
            return Found(str(path.relative_to(tree)), line, fingerprint(body), body)
    return None


def read_all(tree: Path, delivery: str) -> dict[str, Found | None]:
    with xs.one_listing():
        return {f.name: find(tree, f) for f in functions_for(delivery)}


# ---- against the release the model describes ----------------------------------------------------

@dataclass(frozen=True)
class Changed:
    function: str
    where: str | None          # tree file:line, None when absent
    why: str                   # "changed", "absent", "new", "no reference"

    def text(self) -> str:
        if self.why == "absent":
            return f"{self.function} not found in the tree"
        if self.why == "no reference":
            return f"{self.function} ({self.where}): no reference text"
        return f"{self.function} changed ({self.where})"


@dataclass
class Comparison:
    model: str | None                  # the release model (spec name) the texts were compared with
    delivery: str
    found: dict[str, Found | None]
    changed: list[Changed]
    sources: tuple[str, ...]           # the trees the reference texts were taken from
    note: str = ""                     # why nothing could be compared, if so

    @property
    def same(self) -> list[str]:
        bad = {c.function for c in self.changed}
        return [n for n in self.found if n not in bad]


def reference(model: str | None, delivery: str) -> tuple[dict[str, tuple[str | None, ...]], tuple[str, ...]]:
    """{function: accepted fingerprints (None: absent)} and the trees they come from."""
    from .reference import REFERENCE, SOURCES
    key = f"{model}/{delivery}"
    return REFERENCE.get(key, {}), SOURCES.get(key, ())


def compare(tree: Path, model: str | None, delivery: str) -> Comparison:
    """Each function the model encodes for `delivery`, in the tree, against the release model's texts."""
    found = read_all(tree, delivery)
    ref, sources = reference(model, delivery)
    note = ""
    if not ref:
        note = (f"pvsmt has no reference text of {'any release before 4.17' if model is None else 'release model ' + model}"
                f" with {delivery.upper()} delivery: every function it encodes is taken from the model unchecked")
    changed = []
    for name, got in found.items():
        accepted = ref.get(name)
        if accepted is None:
            changed.append(Changed(name, got.where if got else None, "no reference" if got else "absent"))
        elif got is None:
            if None not in accepted:
                changed.append(Changed(name, None, "absent"))
        elif got.fingerprint not in accepted:
            changed.append(Changed(name, got.where, "changed"))
    return Comparison(model, delivery, found, changed, sources, note)


def compare_trees(new: Path, base: Path, delivery: str) -> list[Changed]:
    """The functions the model encodes whose text differs between two trees (a patch's)."""
    out = []
    with xs.one_listing():
        found = [(enc, find(base, enc), find(new, enc)) for enc in functions_for(delivery)]
    for enc, a, b in found:
        if (a.fingerprint if a else None) != (b.fingerprint if b else None):
            out.append(Changed(enc.name, b.where if b else None, "changed" if b else "absent"))
    return out
