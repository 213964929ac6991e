"""The instructions pvsmt models: one row each, read by every part that names an instruction.

A row gives the instruction (its `vocab.Insn` member, whose lower-case name is the
user-facing spelling), its mnemonic and opcode as the SDM writes them, the bytes
pvsmt's test guests write for it in each prefix form the model admits, and at
each layer the rule that handles it:

- `hw`: the case of `cpu_event` that dispatches it (hardware.py), with the function
  giving the CPU's event;
- `doc`: the case of `doc_event` that dispatches it (xen_doc.py: what pv-traps.rst
  states), with the function giving what the guest sees;
- `xen_idt`, `xen_fred`: Xen's code does not dispatch on the instruction but on the
  CPU's event (xen_idt.py, xen_fred.py); these name the rule at which Xen's entry
  code takes the instruction's own event (tests/test_instructions.py checks that
  the rule is on the instruction's path).

`cpu_event` and `doc_event` are built from the rows, so an instruction without a
rule at some layer is an error when pvsmt.model is imported (`IncompleteModel`),
located at the `Insn` member or the row; nothing turns an unknown instruction
into #UD.  The rows' order is `pvsmt table`'s; the dispatchers take the
instructions in `Insn` order.  Consumers: report.OPCODE (explain and every
report), table.INSTRUCTIONS, the validate plans (validate/cases.py INSNS,
validate/xencases.py insn_length, the coverage checks in plan.py and xenplan.py)
and explain's help text (cli/main.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable

from ..errors import InputError
from .vocab import Insn, Prefix
from . import hardware as hw, xen_doc as doc, xen_fred as fred, xen_idt as idt
from .outcome import GuestOutcome, HwOutcome
from .rules import Case, Rule, State, case


@dataclass(frozen=True)
class Handling:
    """One layer's handling of an instruction: the rule its dispatcher takes, then `then(s)`."""

    rule: Rule
    then: Callable[[State], object]


#: The SDM's immediate operands in an opcode: their size in bytes (every other token is one byte).
IMMEDIATE = {"ib": 1, "iw": 2, "id": 4}


@dataclass(frozen=True)
class Instruction:
    insn: Insn
    mnemonic: str                # as the reports name it: "INT1/ICEBP"
    opcode: str                  # the SDM's opcode column: "F1", "CD ib", "62 /r"
    forms: dict                  # Prefix -> the bytes the test guests write (64-bit code); ib/iw/id immediates
    hw: Handling | None
    doc: Handling | None
    xen_idt: Rule | None         # where Xen's IDT entry code takes the instruction's event
    xen_fred: Rule | None        # where entry_from_pv (FRED) takes it
    shown: tuple = ()            # `pvsmt table` rows: (label, settings) pairs
    compat_form: str = ""        # the bytes in compatibility mode, where they differ
    cite: str = ""

    @property
    def text(self) -> str:
        """How reports name it: `INT1/ICEBP (F1)`."""
        return f"{self.mnemonic} ({self.opcode})"

    def length(self, prefix: Prefix = Prefix.NONE, compat: bool = False) -> int:
        """Its length in bytes as the test guests write it."""
        form = self.compat_form if compat and self.compat_form else self.forms[prefix]
        return sum(IMMEDIATE.get(token, 1) for token in form.split())


I, H = Instruction, Handling
#: Every instruction, in the order `pvsmt table` shows them.
INSTRUCTIONS: tuple[Instruction, ...] = (
    I(Insn.INT3, "INT3", "CC", {Prefix.NONE: "CC"},
      H(hw.INT3, hw.int3), H(doc.INSN_INT3, doc.int3), idt.INT3, fred.EXC_INT3,
      shown=(("INT3", {}),), cite="SDM Vol.2A 'INT n/INTO/INT3/INT1'; pv-traps.rst L22"),
    I(Insn.INTO, "INTO", "CE", {Prefix.NONE: "CE"},
      H(hw.INSN_INTO, hw.into), H(doc.INSN_INTO, doc.into), idt.OF_TRAP, fred.EXC_OF,
      shown=(("INTO (OF=1)", {"of": True}),), cite="SDM Vol.2A 'INT n/INTO/INT3/INT1'; pv-traps.rst L24-25"),
    I(Insn.INT1, "INT1/ICEBP", "F1", {Prefix.NONE: "F1"},
      H(hw.INT1, hw.int1), H(doc.INSN_INT1, doc.int1), idt.DB_TRAP, fred.EXC_DB,
      shown=(("INT1 (ICEBP)", {}),), cite="SDM Vol.2A 'INT n/INTO/INT3/INT1'; pv-traps.rst L32-34"),
    I(Insn.INT_N, "INT $N", "CD ib", {Prefix.NONE: "CD ib", Prefix.LEGACY: "66 CD ib", Prefix.REX: "48 CD ib"},
      H(hw.INT_N, hw.int_n), H(doc.INSN_INT_N, doc.int_n_event), idt.GP_IDT, fred.SW_INT,
      # the vectors whose gates differ (reference 2.1) and one ordinary vector
      shown=tuple((f"INT ${v:#04x}", {"vector": v}) for v in (0x03, 0x20, 0x80, 0x82)),
      cite="SDM Vol.2A 'INT n/INTO/INT3/INT1'; pv-traps.rst L27-30; reference 8.1 (prefix forms)"),
    I(Insn.SYSCALL, "SYSCALL", "0F 05", {Prefix.NONE: "0F 05", Prefix.LEGACY: "66 0F 05", Prefix.REX: "48 0F 05"},
      H(hw.INSN_SYSCALL, hw.syscall), H(doc.INSN_SYSCALL, doc.syscall), idt.ENTRY_SYSCALL,
      fred.OTHER_SYSCALL, shown=(("SYSCALL", {}),), cite="SDM Vol.2B 'SYSCALL'; pv-traps.rst L36-38"),
    I(Insn.SYSENTER, "SYSENTER", "0F 34", {Prefix.NONE: "0F 34"},
      H(hw.INSN_SYSENTER, hw.sysenter), H(doc.INSN_SYSENTER, doc.sysenter), idt.ENTRY_SYSENTER,
      fred.OTHER_SYSENTER, shown=(("SYSENTER", {}),), cite="SDM Vol.2B 'SYSENTER'; pv-traps.rst L40-43"),
    I(Insn.CALLGATE, "far CALL", "FF /3", {Prefix.NONE: "FF 18"},
      H(hw.INSN_CALL, hw.far_call), H(doc.INSN_CALL, doc.call_gate), idt.GP_GATE, fred.EXC_GP,
      shown=(("far CALL via call gate", {}),), compat_form="9A id iw",
      cite="SDM Vol.2A 'CALL' (9A is invalid in 64-bit mode); pv-traps.rst L27, L29-30"),
    I(Insn.UD0, "UD0", "0F FF", {Prefix.NONE: "0F FF C0"},
      H(hw.UD_INSN, hw.ud), H(doc.INSN_UD, doc.invalid_op), idt.ENTRY_UD, fred.EXC_UD,
      cite="SDM Vol.2B 'UD-Undefined Instruction'"),
    I(Insn.UD1, "UD1", "0F B9", {Prefix.NONE: "0F B9 C0"},
      H(hw.UD_INSN, hw.ud), H(doc.INSN_UD, doc.invalid_op), idt.ENTRY_UD, fred.EXC_UD,
      cite="SDM Vol.2B 'UD-Undefined Instruction'"),
    I(Insn.UD2, "UD2", "0F 0B", {Prefix.NONE: "0F 0B"},
      H(hw.UD_INSN, hw.ud), H(doc.INSN_UD, doc.invalid_op), idt.ENTRY_UD, fred.EXC_UD,
      shown=(("UD2", {}),), cite="SDM Vol.2B 'UD-Undefined Instruction'"),
    I(Insn.BOUND, "BOUND", "62 /r", {Prefix.NONE: "62 03"},
      H(hw.INSN_BOUND, hw.bound), H(doc.INSN_BOUND, doc.bound), idt.BR_TRAP, fred.EXC_BR,
      shown=(("BOUND (out of range)", {"bound.in_range": False}),),
      cite="SDM Vol.2A 'BOUND'; pv-traps.rst L45-46"),
)
del I, H

LAYERS = ("hw", "doc", "xen_idt", "xen_fred")


class IncompleteModel(InputError):
    """An instruction without a row, or a row without a rule at some layer: raised when pvsmt.model is imported."""


def _line(path: Path, pattern: str) -> int:
    for n, text in enumerate(path.read_text().splitlines(), 1):
        if re.search(pattern, text):
            return n
    return 0


def _where_insn(insn: Insn) -> str:
    path = Path(__file__).resolve().parent / "vocab.py"
    line = _line(path, r"^\s+" + insn.name + r"\s*=")
    return f"{path}:{line}"


def _where_row(insn: Insn) -> str:
    path = Path(__file__).resolve()
    line = _line(path, r"I\(Insn\." + insn.name + r"\b")
    return f"{path}:{line}"


def _check(rows: tuple[Instruction, ...]) -> dict[Insn, Instruction]:
    """Every `Insn` member has one row, with a rule of the right layer at each layer."""
    by_insn: dict[Insn, Instruction] = {}
    for row in rows:
        if row.insn in by_insn:
            raise IncompleteModel(_where_row(row.insn), f"instruction {row.insn.label} has two rows")
        by_insn[row.insn] = row
    for insn in Insn:
        if insn not in by_insn:
            raise IncompleteModel(_where_insn(insn), f"instruction {insn.label} has no row in "
                                  f"pvsmt/model/instructions.py INSTRUCTIONS: give its opcode and the rule "
                                  f"that handles it at each layer ({', '.join(LAYERS)})")
    for row in rows:
        for layer, prefix in (("hw", "hw."), ("doc", "doc."), ("xen_idt", "xen."), ("xen_fred", "xen.")):
            got = getattr(row, layer)
            rule = got.rule if isinstance(got, Handling) else got
            if not isinstance(rule, Rule) or not rule.name.startswith(prefix) \
                    or (layer == "xen_idt" and rule.name.startswith("xen.fred.")):
                raise IncompleteModel(_where_row(row.insn), f"instruction {row.insn.label} has no {layer} rule "
                                      f"(a {prefix}* rule of that layer is needed)")
        if Prefix.NONE not in row.forms:
            raise IncompleteModel(_where_row(row.insn), f"instruction {row.insn.label} has no unprefixed form")
    for layer in ("hw", "doc"):
        then: dict[str, Callable] = {}
        for row in rows:
            h = getattr(row, layer)
            if then.setdefault(h.rule.name, h.then) is not h.then:
                raise IncompleteModel(_where_row(row.insn), f"instruction {row.insn.label}: rule {h.rule.name} "
                                      f"is taken with two different functions at layer {layer}")
    return by_insn


BY_INSN: dict[Insn, Instruction] = dict(sorted(_check(INSTRUCTIONS).items()))


def _groups(layer: str) -> tuple[tuple[tuple[Insn, ...], Handling], ...]:
    """The dispatcher's cases: the instructions sharing a handling, in `Insn` order; the largest group
    is the last case (the Z3 encoding's else branch), which by `_check` holds exactly its instructions."""
    groups: dict[str, tuple[list[Insn], Handling]] = {}
    for insn, row in BY_INSN.items():
        h = getattr(row, layer)
        groups.setdefault(h.rule.name, ([], h))[0].append(insn)
    ordered = [(tuple(insns), h) for insns, h in groups.values()]
    last = max(range(len(ordered)), key=lambda i: (len(ordered[i][0]), i))
    return tuple(ordered[:last] + ordered[last + 1:] + [ordered[last]])


_DISPATCH = {layer: _groups(layer) for layer in ("hw", "doc")}


def _cases(s: State, layer: str) -> list[Case]:
    insn = s.insn
    out = []
    groups = _DISPATCH[layer]
    for n, (insns, h) in enumerate(groups):
        facts = {"insn": insn} if "{insn" in h.rule.says else {}
        if n == len(groups) - 1:
            when = True  # the instructions no earlier case took: exactly `insns` (see _groups)
        elif len(insns) == 1:
            when = insn == insns[0]
        else:
            when = s.ops.any(*(insn == i for i in insns))
        out.append(case(when, h.rule, partial(h.then, s), **facts))
    return out


def cpu_event(s: State) -> HwOutcome:
    """The event the CPU raises when the configuration's instruction executes (hardware.py)."""
    return s.ops.decide(*_cases(s, "hw"))


def doc_event(s: State, hw_event: HwOutcome) -> GuestOutcome:
    """What the PV guest sees according to pv-traps.rst (xen_doc.py; the CPU's event is not consulted)."""
    return s.ops.decide(*_cases(s, "doc"))


def prefixed() -> list[Insn]:
    """The instructions with a prefix form besides the unprefixed one."""
    return [i for i, row in BY_INSN.items() if len(row.forms) > 1]
