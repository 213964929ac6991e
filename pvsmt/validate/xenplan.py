"""What `pvsmt validate --xen` runs on a real Xen, and what the model predicts for it.

Cases come from the Xen layer's own case split (pvsmt/model/xen_idt.py): every
instruction in each guest mode and code mode with and without its callbacks,
the vDPL rule against each guest mode, prefixes, the trap table's IF flag, far
CALLs through call gates the guest writes into its GDT and LDT (present or not,
every DPL and selector RPL, each table's edges and selectors beyond its limit), and
null trap-table entries (each of those crashes the domain, so they run last);
plus INT $N over all 256 vectors at vDPL 0 and 3, from the kernel and from user
mode, unprefixed and (PV64) REX-prefixed.  `coverage` lists the Xen rules no
case takes, less those a run cannot take (NOT_VALIDATED, each with its reason).  SYSCALL
from compatibility mode reaches Xen (through CSTAR) on an AMD CPU only: the xen.cstar rules
need runs of both vendors.

A prediction is the model's evaluation of the case under the release's spec,
without Z3: the CPU layer as the spec's IDT says, then the emulator's known
divergences from the manuals (the hardware Xen really runs on), then the Xen
layer.  Its guest-level outcome is compared with what the PV test guest saw.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from ..backends.concrete import Config, ConcreteEnv, ConcreteOps, ConcreteState, Evaluation, Step
from ..backends.configure import resolve
from ..model import RULES, cpu_event, xen_event
from ..model.outcome import GuestOutcome, HwOutcome
from ..lang.spec import Spec
from ..model.vocab import (NONE, Callback, CodeMode, GateTable, Guest, GuestEvent, GuestMode, Insn, MaskFlag, Prefix,
                     Rip, Vendor)
from .cases import check_every_instruction
from .xencases import GDT_ENTS, GDT_LIMIT_INDEX, LDT_ENTS, XenCase, XenObservation

#: Xen rules a run cannot take, and why.
NOT_VALIDATED = {
    "xen.shutdown": "a triple fault: Xen's IDT has every gate present",
    "xen.df": "a double fault: Xen's IDT has every gate present",
    "xen.np.ext": "an exception through a not-present gate: Xen's IDT has every gate present",
    "xen.emul_swint.not_cd": "#GP naming an IDT vector from an instruction other than INT $N: Xen's gates "
                             "for INT3 and INTO are DPL3",
    "xen.gp.ext": "#GP with EXT: a nested fault during delivery through Xen's IDT",
    "xen.idt.sw_at_exception": "INT $N reaching an exception entry directly needs a DPL3 gate other than 3, 4",
    "xen.idt.irq": "INT $N reaching common_interrupt directly needs a DPL3 IRQ gate",
    "xen.callgate.raw": "a call gate the CPU transfers through: Xen's audit clears every present guest gate's "
                        "DPL (gate_audit = 1 in every release spec), and a not-present one never transfers",
    "xen.int3.debugger": "no debugger (gdbsx) is attached in a test boot",
    "xen.db.debugger": "no debugger (gdbsx) is attached in a test boot",
    "xen.ud.sig_read_fault": "the test stub is never within 5 bytes of an unmapped page",
    "xen.exception.other": "an exception outside the model (#PF, #SS, ...)",
    "xen.int82.other": "only a PV32 kernel (CPL1) gets through the DPL1 gate of 0x82",
    "xen.lstar.pv32": "a PV32 guest runs no 64-bit code",
    "xen.emul_gate.decode": "an instruction other than a far CALL raising #GP(gate selector): of the model's "
                            "instructions only the far CALL raises #GP with a selector error code",
}
#: Layers of the model a Xen run checks: the Xen rules with IDT delivery.
LAYERS = ("xen.",)
#: Rules of other accounts or delivery modes, never taken with an IDT spec of Xen's code.
OTHER_ACCOUNTS = ("xen.fred.", "xen.doc.", "xen.via_doc", "xen.via_fred")

VECTORS_PREFIXED = (0x00, 0x01, 0x02, 0x03, 0x04, 0x0d, 0x20, 0x21, 0x80, 0x81, 0x82, 0xff)
INSNS = ("int3", "into", "int1", "syscall", "sysenter", "ud0", "ud1", "ud2", "bound", "callgate")


def modes(guest: str) -> tuple[str, ...]:
    """The code modes a guest kind runs: PV32 has no 64-bit code."""
    return ("compat",) if guest == "pv32" else ("long64", "compat")


def plan(guest: str, first_id: int = 0) -> list[XenCase]:
    """Every case of a run for one guest kind, ids from `first_id`; domain crashes last."""
    specs = []
    for group in (int_sweep, prefixes, vdpl_matrix, insn_matrix, gates, mask_flags, crashes):
        specs += group(guest)
    check_every_instruction((kw["insn"] for kw in specs), __file__)
    return [XenCase(first_id + i, guest=guest, **kw) for i, kw in enumerate(specs)]


def int_sweep(guest: str) -> list[dict]:
    """INT $N, N = 0..255, at vDPL 0 and 3 from the kernel and from user mode; PV64 also REX-prefixed."""
    prefixes_ = ("none", "rex") if guest == "pv64" else ("none",)
    mode = modes(guest)[0]
    return [dict(guest_mode=gm, mode=mode, insn="int_n", vector=v, prefix=p, tt=((v, True, dpl),))
            for gm, p, dpl, v in itertools.product(("kernel", "user"), prefixes_, (0, 3), range(256))]


def prefixes(guest: str) -> list[dict]:
    """Legacy- and REX-prefixed INT $N at every vDPL, in every code mode, on a few vectors."""
    out = []
    for gm, mode, prefix, dpl, v in itertools.product(("kernel", "user"), modes(guest), ("legacy", "rex"),
                                                      range(4), VECTORS_PREFIXED):
        if prefix == "rex" and mode == "compat":
            continue
        out.append(dict(guest_mode=gm, mode=mode, insn="int_n", vector=v, prefix=prefix, tt=((v, True, dpl),)))
    return out


def vdpl_matrix(guest: str) -> list[dict]:
    """INT $N, INT3 and INTO against every vDPL of their TT entry, from both guest modes."""
    out = []
    for gm, mode, dpl in itertools.product(("kernel", "user"), modes(guest), range(4)):
        out.append(dict(guest_mode=gm, mode=mode, insn="int_n", vector=0x21, tt=((0x21, True, dpl),)))
        out.append(dict(guest_mode=gm, mode=mode, insn="int_n", vector=0x80, tt=((0x80, True, dpl),)))
        out.append(dict(guest_mode=gm, mode=mode, insn="int3", tt=((3, True, dpl),)))
        out.append(dict(guest_mode=gm, mode=mode, insn="into", of=True, tt=((4, True, dpl),)))
        # a null entry the guest never registered has vDPL 0: the #GP goes to TT[13]
        if dpl == 0:
            out.append(dict(guest_mode=gm, mode=mode, insn="int_n", vector=0x21, tt=((0x21, False, 0),)))
    return out


def insn_matrix(guest: str) -> list[dict]:
    """Every instruction in each guest mode and code mode, with its flag variants and its callbacks
    registered or not."""
    out = []
    for gm, mode, insn in itertools.product(("kernel", "user"), modes(guest), INSNS):
        for extra in _variants(insn):
            for cb in (True, False):
                if not cb and insn not in ("syscall", "sysenter"):
                    continue
                if insn == "sysenter" and guest == "pv64" and gm == "kernel":
                    continue  # crashes the domain: in crashes()
                out.append(dict(guest_mode=gm, mode=mode, insn=insn, cb_syscall=cb, cb_syscall32=cb,
                                cb_sysenter=cb, **extra))
    return out


def _variants(insn: str) -> list[dict]:
    if insn == "into":
        return [dict(of=True), dict(of=False)]
    if insn == "bound":
        return [dict(bound_in_range=True), dict(bound_in_range=False)]
    return [{}]


#: The gate indices of the matrix: the second page of either table (the spec defaults' 0x200).
GATE_INDEX = 0x200
#: Further (table, index, in_limit): each table's first and last gate, and selectors beyond the
#: limit (no LDT at all; an LDT ending just before the gate; a GDT index past Xen's page).
GATE_EDGES = (("gdt", 1, True), ("gdt", GDT_ENTS - 2, True), ("ldt", 0, True), ("ldt", LDT_ENTS - 2, True),
              ("ldt", 0, False), ("ldt", GATE_INDEX, False), ("gdt", GDT_LIMIT_INDEX, False),
              ("gdt", 0x1FFF, False))


def selector(table: str, index: int, rpl: int) -> int:
    return index << 3 | (4 if table == "ldt" else 0) | rpl


def gates(guest: str) -> list[dict]:
    """Far CALL through a gate the guest wrote: in the GDT and the LDT, present or not, at every DPL
    and selector RPL, from both guest modes; then each table's edges and selectors beyond its limit."""
    out = []
    for gm, mode in itertools.product(("kernel", "user"), modes(guest)):
        for table, present, dpl, rpl in itertools.product(("gdt", "ldt"), (True, False), range(4), range(4)):
            out.append(dict(guest_mode=gm, mode=mode, insn="callgate", gate_selector=selector(table, GATE_INDEX, rpl),
                            gate_present=present, gate_dpl=dpl))
        for (table, index, in_limit), present in itertools.product(GATE_EDGES, (True, False)):
            out.append(dict(guest_mode=gm, mode=mode, insn="callgate", gate_selector=selector(table, index, 3),
                            gate_present=present, gate_dpl=3, gate_in_limit=in_limit))
    return out


def mask_flags(guest: str) -> list[dict]:
    """Which registration flag masks events: every TT bounce and callback with the flags flipped."""
    out = []
    for gm, mode in itertools.product(("kernel", "user"), modes(guest)):
        flipped = dict(tt_if=True, cb_syscall_mask=True, cb_syscall32_mask=False, cb_sysenter_mask=True)
        for insn in ("int3", "ud2", "syscall", "sysenter"):
            if insn == "sysenter" and guest == "pv64" and gm == "kernel":
                continue
            out.append(dict(guest_mode=gm, mode=mode, insn=insn, **flipped))
        out.append(dict(guest_mode=gm, mode=mode, insn="int_n", vector=0x21, tt=((0x21, True, 3),), **flipped))
    return out


def crashes(guest: str) -> list[dict]:
    """Cases that crash the domain (each costs a boot): null TT entries, PV64 kernel SYSENTER."""
    mode = modes(guest)[0]
    out = [dict(guest_mode="user", mode=mode, insn="int3", tt=((3, False, 0),)),
           dict(guest_mode="kernel", mode=mode, insn="int_n", vector=0x80, tt=((0x80, False, 0), (13, False, 0)))]
    if guest == "pv64":
        out += [dict(guest_mode="kernel", mode=m, insn="sysenter", cb_sysenter=cb)
                for m, cb in itertools.product(modes(guest), (True, False))]
    return out


# ---- the model's prediction -------------------------------------------------------------------

@dataclass(frozen=True)
class Prediction:
    """The model's evaluation of a case, with the emulator divergence it applied, if any."""

    evaluation: Evaluation
    divergence: str = ""

    @property
    def guest(self) -> GuestOutcome:
        return self.evaluation.guest


class Predictor:
    """Predicts cases under one spec, vendor and emulator (its known divergences)."""

    def __init__(self, spec: Spec, vendor: str = "intel", divergences=()):
        self.spec = spec
        self.vendor = Vendor.parse(vendor)
        self.divergences = tuple(divergences)
        self._base: dict[tuple, dict] = {}

    def base(self, guest: Guest, mode: GuestMode) -> dict:
        """The spec's values for everything a case does not set (resolved once)."""
        key = (guest, mode)
        if key not in self._base:
            settings = {"vendor": self.vendor, "guest": guest, "guest_mode": mode}
            self._base[key] = dict(resolve(self.spec, settings).config.values)
        return self._base[key]

    def config(self, case: XenCase) -> Config:
        guest, gm = Guest.parse(case.guest), GuestMode.parse(case.guest_mode)
        values = dict(self.base(guest, gm))
        values.update(situation(case))
        return Config(values)

    def predict(self, case: XenCase) -> Prediction:
        config = self.config(case)
        trace: list[Step] = []
        state = ConcreteState(config, ConcreteOps(trace))
        hw = cpu_event(state)
        hw, divergence = self._as_emulated(config, hw, tuple(trace))
        guest = xen_event(state, hw)
        return Prediction(Evaluation(hw, guest, tuple(trace), tuple(state.reads)), divergence)

    def _as_emulated(self, config: Config, hw: HwOutcome, trace) -> tuple[HwOutcome, str]:
        """The CPU's event as the emulator raises it, where a known divergence says it differs."""
        env = ConcreteEnv(config, Evaluation(hw, None, trace))
        for d in self.divergences:
            if d.when.eval(env):
                return d.emulated(hw, env), d.id
        return hw, ""


def situation(case: XenCase) -> dict:
    """The knobs and trap-table entries a case fixes (the rest comes from the spec)."""
    pv32 = case.guest == "pv32"
    kernel = case.guest_mode == "kernel"
    values = {
        "guest": Guest.parse(case.guest), "guest_mode": GuestMode.parse(case.guest_mode),
        "mode": CodeMode.parse(case.mode), "cpl": 1 if pv32 and kernel else 3,
        "insn": Insn.parse(case.insn), "vector": case.vector, "prefix": Prefix.parse(case.prefix),
        "of": case.of, "bound.in_range": case.bound_in_range,
        **gate_knobs(case),
        "cb.syscall": case.cb_syscall and not pv32, "cb.syscall32": case.cb_syscall32,
        "cb.sysenter": case.cb_sysenter, "debugger": False, "sig_read_fault": False,
    }
    table = {v: (True, 0) for v in range(256)}
    for v, present, dpl in case.tt:
        # the guest nulls an entry by not registering it, so its flags (vDPL) stay 0; a crafted
        # null entry with a vDPL (arch_set_info_guest, or a PV32 null selector) is not a case here
        table[v] = (True, dpl) if present else (False, 0)
    for v, (present, dpl) in table.items():
        values[f"tt.{v:#04x}.present"], values[f"tt.{v:#04x}.dpl"] = present, dpl
    return values


def gate_knobs(case: XenCase) -> dict:
    """The far CALL's selector and the gate the guest wrote for it (xencases.gate_flags)."""
    sel = case.gate_selector
    return {"gate.table": GateTable.LDT if sel & 4 else GateTable.GDT, "gate.index": sel >> 3,
            "gate.rpl": sel & 3, "gate.in_limit": case.gate_in_limit, "gate.present": case.gate_present,
            "gate.dpl": case.gate_dpl}


def coverage(runs) -> list[str]:
    """The Xen rules (IDT delivery, Xen's code) that no case of the (cases, predictor) `runs` takes
    and a run could take.  Rules of one release or guest kind need that run among them."""
    taken = {step.rule.name for cases, predictor in runs for case in cases
             for step in predictor.predict(case).evaluation.trace}
    return sorted(n for n in RULES if n.startswith(LAYERS) and not n.startswith(OTHER_ACCOUNTS)
                  and n not in taken and n not in NOT_VALIDATED)


# ---- comparing -----------------------------------------------------------------------------------

MASK_FLAG = {MaskFlag.TT_IF: "tt_if", MaskFlag.SYSCALL: "cb_syscall_mask",
             MaskFlag.SYSCALL32: "cb_syscall32_mask", MaskFlag.SYSENTER: "cb_sysenter_mask"}


def as_observed(case: XenCase, g: GuestOutcome, **replaced) -> tuple:
    """A guest outcome in the terms the PV test guest observes (`replaced`: fields a known
    divergence says the real Xen gives instead, `masked` included)."""
    values = {"event": g.event, "vector": g.vector, "error_code": g.error_code, "callback": g.callback,
              "rip": g.rip, "masked": getattr(case, MASK_FLAG[g.masked_by]) if g.masked_by in MASK_FLAG else None}
    values.update(replaced)
    ec = values["error_code"] if values["error_code"] != NONE else -1
    if values["event"] == GuestEvent.EXCEPTION:
        return ("exception", values["vector"], ec, Rip(values["rip"]).label, values["masked"])
    if values["event"] == GuestEvent.CALLBACK:
        return ("callback", Callback(values["callback"]).label, Rip(values["rip"]).label, values["masked"])
    return (GuestEvent(values["event"]).label,)


def observed(o: XenObservation) -> tuple:
    if o.event == "exception":
        return ("exception", o.vector, o.error_code, o.rip, o.masked)
    if o.event == "callback":
        return ("callback", o.callback, o.rip, o.masked)
    return (o.event,)


def describe(t: tuple) -> str:
    """An observed tuple in words."""
    from ..report.wording import exc  # noqa: PLC0415 (report is only needed for wording)
    if t[0] == "exception":
        _, vector, ec, rip, masked = t
        return f"{exc(vector, ec if ec != -1 else NONE)} via TT[{vector:#04x}], rip={rip}, " \
               f"{'masked' if masked else 'unmasked'}"
    if t[0] == "callback":
        return f"{t[1]} callback, rip={t[2]}, {'masked' if t[3] else 'unmasked'}"
    return {"none": "nothing: the guest goes on after the instruction", "hypercall": "a hypercall returns",
            "domain_crash": "the domain crashes", "unmodelled": "not modelled",
            "call_gate": "an emulated far CALL: the guest runs at the gate's target"}.get(t[0], t[0])


__all__ = ["NOT_VALIDATED", "Prediction", "Predictor", "as_observed", "coverage", "describe", "observed", "plan"]
