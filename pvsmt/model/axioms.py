"""Well-formedness: which combinations of knobs describe a real situation.

Each axiom is a constraint over a State, with its source.  Both backends
enforce them: Z3 asserts them, `pvsmt explain` rejects settings that break one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .vocab import CodeMode, Guest, GuestMode, Prefix
from .instructions import prefixed  # the instructions with a prefix form (their rows)
from .rules import State


@dataclass(frozen=True)
class Axiom:
    name: str
    says: str
    holds: Callable[[State], object]
    cite: str
    knobs: tuple[str, ...]  # the knobs it relates, for error messages


def _rex_long64(s: State):
    return s.ops.any(s.prefix != Prefix.REX, s.mode == CodeMode.LONG64)


def _prefix_modelled(s: State):
    return s.ops.any(s.prefix == Prefix.NONE, *(s.insn == i for i in prefixed()))


def _pv32_compat(s: State):
    return s.ops.any(s.guest != Guest.PV32, s.mode == CodeMode.COMPAT)


def _pv64_cpl3(s: State):
    return s.ops.any(s.guest != Guest.PV64, s.cpl == 3)


def _pv32_cpl(s: State):
    o = s.ops
    kernel_iff_cpl1 = (s.guest_mode == GuestMode.KERNEL) == (s.cpl == 1)
    return o.any(s.guest != Guest.PV32, o.all(s.cpl >= 1, kernel_iff_cpl1))


#: Axioms of the CPU alone.
AXIOMS: tuple[Axiom, ...] = (
    Axiom("rex_needs_long64", "a REX prefix exists only in 64-bit code (0x40-0x4f are INC/DEC in 32-bit code)",
          _rex_long64, "SDM Vol.2A 'REX Prefixes'", ("prefix", "mode")),
    Axiom("prefix_modelled", "the prefix form is modelled for INT $N and SYSCALL only", _prefix_modelled,
          "reference 8.1 (INT $N emulation), 7 item 3 (rewinding by 2 or by the full length)", ("prefix", "insn")),
)

#: Axioms that hold where PV guests exist.
GUEST_AXIOMS: tuple[Axiom, ...] = (
    Axiom("pv32_is_compat", "a PV32 guest runs only 32-bit (compatibility mode) code", _pv32_compat,
          "reference 0 (K32/U32 are 32-bit); Xen pv/descriptor-tables.c check_descriptor", ("guest", "mode")),
    Axiom("pv64_cpl3", "a PV64 guest runs at CPL3 in kernel and user mode", _pv64_cpl3,
          "Xen include/asm/regs.h L13-16; pv-traps.rst", ("guest", "cpl")),
    Axiom("pv32_cpl", "a PV32 guest is in kernel mode exactly at CPL1 (CPL2 counts as user)", _pv32_cpl,
          "Xen include/asm/regs.h L13-16", ("guest", "guest_mode", "cpl")),
)
