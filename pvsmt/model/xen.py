"""Xen: the account the spec's `abi` names (the code or the document), then for the
code the entry path the spec's event delivery (IDT or FRED) selects."""

from __future__ import annotations

from .vocab import Abi, Delivery
from .outcome import GuestOutcome, HwOutcome
from .rules import Rule, State, case
from .instructions import doc_event
from .xen_fred import xen_fred_event
from .xen_idt import xen_idt_event

VIA_DOC = Rule("xen.via_doc", "abi = doc: the guest sees what docs/guest-guide/x86/pv-traps.rst states",
               "pv-traps.rst (Xen commit 31cbb8e2a5, in 4.22.0); reference 1")
VIA_IDT = Rule("xen.via_idt", "IDT delivery (opt_fred=0)", "Xen traps-setup.c L378-432 (traps_init)")
VIA_FRED = Rule("xen.via_fred", "FRED delivery (opt_fred=1)", "Xen traps-setup.c L378-432 (traps_init), L292-319")


def xen_event(s: State, hw: HwOutcome) -> GuestOutcome:
    """What the PV guest sees when the CPU raised `hw`."""
    return s.ops.decide(
        case(s.abi == Abi.DOC, VIA_DOC, lambda: doc_event(s, hw)),
        case(s.delivery == Delivery.IDT, VIA_IDT, lambda: xen_idt_event(s, hw)),
        case(True, VIA_FRED, lambda: xen_fred_event(s, hw)),
    )
