"""What `pvsmt validate` runs and what the model predicts for it.

Cases come from the hardware layer's own case split: a product over the knobs
each branch of pvsmt/model/hardware.py tests (gate DPL against CPL, the present
bit, the code mode, EFER.SCE, SYSENTER_CS, RFLAGS.OF, BOUND's range, the call
gate's table, RPL, DPL, present bit and limit, not-present exception gates),
plus a sweep of INT $N over all 256 vectors at gate DPL 0 and 3 in both code
modes.  `coverage` replays every case through the concrete evaluator and lists
the hardware rules no case takes, so a new rule without a case is noticed.

A prediction is the model's hardware outcome for the case, evaluated without
Z3 with the CPU seeing the gate DPL as written (no Xen audit) and IDT delivery.
"""

from __future__ import annotations

import itertools

from ..backends.concrete import Config, evaluate
from ..model import RULES
from ..model.outcome import HwOutcome
from ..report.wording import exc
from ..model.vocab import (NONE, Abi, CodeMode, Delivery, GateTable, GateType, HwEvent, Insn, Prefix, SysenterCS,
                     Vendor)
from .cases import Case, Observation, check_every_instruction

MODES = ("long64", "compat")
GATE_INDEX = {"gdt": 40, "ldt": 5}  # free descriptor slots in the test kernel's tables (layout.h)

#: Hardware rules a validation run cannot take: FRED delivery (no FRED in either emulator) and
#: Xen's call-gate audit (software, not the CPU).
NOT_VALIDATED = ("hw.fred.", "hw.callgate.audited")


def plan(first_id: int = 0) -> list[Case]:
    """Every case of a run, ids from `first_id` (about 1,700 per vendor)."""
    groups = (int_sweep, int_dpl_matrix, insn_matrix, gate_matrix, missing_gates, gate_types, prefixes)
    cases: list[Case] = []
    for group in groups:
        cases += group(first_id + len(cases))
    check_every_instruction((c.insn for c in cases), __file__)
    return cases


def _numbered(first: int, specs) -> list[Case]:
    return [Case(first + i, *args, **kw) for i, (args, kw) in enumerate(specs)]


def int_sweep(first: int) -> list[Case]:
    """INT $N for N = 0..255 at CPL3, gate DPL 0 and 3, both code modes: 1,024 cases."""
    return _numbered(first, (((("int_n", 3, mode)), dict(vector=v, idt=((v, True, dpl, "interrupt"),)))
                             for mode, dpl, v in itertools.product(MODES, (0, 3), range(256))))


def int_dpl_matrix(first: int) -> list[Case]:
    """INT $N, INT3 and INTO at every CPL against every gate DPL, present or not."""
    specs = []
    for (insn, v, kw), cpl, dpl, present, mode in itertools.product(
            (("int_n", 0x21, {}), ("int3", 3, {}), ("into", 4, {"of": True})), range(4), range(4),
            (True, False), MODES):
        if insn == "into" and mode == "long64":
            continue
        specs.append(((insn, cpl, mode), dict(vector=v if insn == "int_n" else 0,
                                               idt=((v, present, dpl, "interrupt"),), **kw)))
    return _numbered(first, specs)


INSN_VARIANTS = (("int3", {}), ("int1", {}), ("ud0", {}), ("ud1", {}), ("ud2", {}), ("into", {"of": True}),
                 ("into", {"of": False}), ("bound", {"bound_in_range": True}),
                 ("bound", {"bound_in_range": False}), ("syscall", {"efer_sce": True}),
                 ("syscall", {"efer_sce": False}), ("sysenter", {"sysenter_cs_null": False}),
                 ("sysenter", {"sysenter_cs_null": True}))


def insn_matrix(first: int) -> list[Case]:
    """Every instruction but the far CALL at every CPL in both modes, with its flag variants."""
    return _numbered(first, (((insn, cpl, mode), kw)
                             for (insn, kw), cpl, mode in itertools.product(INSN_VARIANTS, range(4), MODES)))


def gate_matrix(first: int) -> list[Case]:
    """Far CALL through a call gate: table, CPL, mode, gate DPL, RPL, present, limit; the null selector."""
    specs = [(("callgate", cpl, mode), dict(gate_table=t, gate_index=GATE_INDEX[t], gate_rpl=rpl, gate_dpl=dpl,
                                            gate_present=p, gate_in_limit=lim))
             for t, cpl, mode, dpl, rpl, p, lim in itertools.product(
                 ("gdt", "ldt"), (0, 3), MODES, range(4), (0, 3), (True, False), (True, False))]
    specs += [(("callgate", cpl, mode), dict(gate_index=0, gate_rpl=rpl))
              for cpl, mode, rpl in itertools.product((0, 3), MODES, (0, 3))]
    return _numbered(first, specs)


def _absent(*vectors) -> tuple:
    return tuple((v, False, 0, "interrupt") for v in vectors)


def missing_gates(first: int) -> list[Case]:
    """Exceptions whose gate is not present: #NP with EXT, #DF for contributory ones, shutdown."""
    specs = []
    for cpl, mode in itertools.product((0, 3), MODES):
        specs += [
            (("ud2", cpl, mode), dict(idt=_absent(6))),                       # #NP(0x33)
            (("ud2", cpl, mode), dict(idt=_absent(6, 11))),                   # #NP's gate missing too: #DF
            (("int_n", cpl, mode), dict(vector=0x21, idt=_absent(0x21, 11))),  # #NP(0x10a), its gate missing
            (("int_n", cpl, mode), dict(vector=0x21, idt=((0x21, True, 0, "interrupt"), (13, False, 0,
                                                                                          "interrupt")))),
            (("int1", cpl, mode), dict(idt=_absent(1))),                      # ICEBP: #NP(0x0b), EXT set
        ]
        if mode == "compat":
            specs.append((("bound", cpl, mode), dict(idt=_absent(5))))        # #BR's gate missing: #NP(0x2b)
    specs.append((("ud2", 3, "long64"), dict(idt=_absent(6, 11, 8))))        # #DF's gate missing: shutdown
    return _numbered(first, specs)


def gate_types(first: int) -> list[Case]:
    """Trap gates keep RFLAGS.IF, interrupt gates clear it: INT $N and #UD through each type."""
    specs = []
    for gtype, mode, cpl in itertools.product(("interrupt", "trap"), MODES, (0, 3)):
        specs.append((("int_n", cpl, mode), dict(vector=0x80, idt=((0x80, True, 3, gtype),))))
        specs.append((("ud2", cpl, mode), dict(idt=((6, True, 0, gtype),))))
    return _numbered(first, specs)


def prefixes(first: int) -> list[Case]:
    """INT $N with a legacy prefix (both modes) or REX (64-bit code only): the CPU ignores both."""
    specs = []
    for prefix, mode, dpl in itertools.product(("legacy", "rex"), MODES, (0, 3)):
        if prefix == "rex" and mode == "compat":
            continue
        specs.append((("int_n", 3, mode), dict(vector=0x21, prefix=prefix, idt=((0x21, True, dpl, "interrupt"),))))
    return _numbered(first, specs)


# ---- the model's prediction -------------------------------------------------------------------

def config(case: Case, vendor: str) -> Config:
    """The case as a configuration of the hardware layer (no guests)."""
    idt = {v: (present, dpl, GateType.parse(t)) for v, present, dpl, t in case.idt}
    values = {
        "vendor": Vendor.parse(vendor), "mode": CodeMode.parse(case.mode), "cpl": case.cpl,
        "insn": Insn.parse(case.insn), "vector": case.vector, "prefix": Prefix.parse(case.prefix),
        "of": case.of, "bound.in_range": case.bound_in_range, "gate.table": GateTable.parse(case.gate_table),
        "gate.index": case.gate_index, "gate.rpl": case.gate_rpl, "gate.in_limit": case.gate_in_limit,
        "gate.present": case.gate_present, "gate.dpl": case.gate_dpl, "delivery": Delivery.IDT,
        "abi": Abi.CODE, "efer.sce": case.efer_sce,
        "sysenter_cs": SysenterCS.NULL if case.sysenter_cs_null else SysenterCS.NONNULL, "gate_audit": False,
    }

    def idt_entry(name: str):
        _, index, field = name.split(".")
        present, dpl, gtype = idt.get(int(index, 0), (True, 0, GateType.INTERRUPT))
        return {"present": present, "dpl": dpl, "type": gtype}[field]
    return Config(values, fill=idt_entry)


def predict(case: Case, vendor: str):
    """The model's evaluation of the case (hardware layer only)."""
    return evaluate(config(case, vendor), guests=False)


def coverage(cases: list[Case], vendors=("intel", "amd")) -> list[str]:
    """The hardware rules no case takes on any vendor (those a validation run can take)."""
    taken = {step.rule.name for case in cases for v in vendors for step in predict(case, v).trace}
    return sorted(name for name, rule in RULES.items() if rule.layer == "hw" and name not in taken
                  and not name.startswith(NOT_VALIDATED) and not name.startswith("hw.insn."))


# ---- comparing -----------------------------------------------------------------------------------

def as_observed(hw: HwOutcome) -> tuple:
    """A hardware outcome in the terms the test kernel observes."""
    if hw.event == HwEvent.IDT:
        return ("idt", hw.vector, hw.error_code if hw.error_code != NONE else -1, hw.kind.label,
                hw.gate_type.label)
    if hw.event == HwEvent.SYSCALL:
        return ("syscall", hw.msr.label)
    return (hw.event.label,)


def observed(o: Observation) -> tuple:
    if o.event == "idt":
        return ("idt", o.vector, o.error_code, o.kind, o.gate_type)
    if o.event == "syscall":
        return ("syscall", o.msr)
    return (o.event,)


def describe(t: tuple) -> str:
    """An outcome tuple in words: `#GP(0x10a) fault, interrupt gate`, `SYSCALL via cstar`."""
    if t[0] == "idt":
        _, vector, ec, kind, gtype = t
        return f"{exc(vector, ec if ec != -1 else NONE)} {kind} ({gtype} gate)"
    if t[0] == "syscall":
        return f"SYSCALL via {t[1].upper()}"
    return {"none": "completes (no event)", "sysenter": "SYSENTER entry", "call_gate": "call-gate transfer",
            "shutdown": "shutdown (triple fault)"}.get(t[0], t[0])
