"""The other delivery mode on an IDT-mode path: what FRED would make of the same event.

A path through Xen's IDT code (the step `xen.via_idt`, "IDT delivery (opt_fred=0)")
says, where it is so, that FRED delivery (opt_fred=1) gives the guest something else:
the same configuration is evaluated concretely with `delivery = fred`, and where the
guest outcomes differ the step's sentence gains the FRED outcome and the FRED rule
that decides it (its source).  These are the differences diffs/xen--xen-fred.expect
lists.  A PV32 guest's path says that FRED has none (traps-setup.c L401-407).
Nothing is added where the outcomes agree, nor for a spec that is not `xen` or does
not extend it: the releases before 4.22 (xen-4.17, xen-4.20) have no FRED code.  Reports only: the model is unchanged.
"""

from __future__ import annotations

from dataclasses import replace

from ..backends.concrete import Config, Evaluation, evaluate
from ..model.vocab import Delivery, Guest

IDT_RULE = "xen.via_idt"
PV32_NOTE = "; FRED (opt_fred=1) runs no PV32 guests (traps-setup.c L401-407)"


def fred_outcome(config: Config, ev: Evaluation) -> str | None:
    """The FRED remark for this IDT-mode path, or None where there is nothing to say."""
    from .wording import guest_detail  # report imports concrete: import here
    if ev.guest is None or not any(s.rule.name == IDT_RULE for s in ev.trace):
        return None
    try:
        if config.get("guest") == Guest.PV32:
            return PV32_NOTE
        fred = evaluate(Config({**config.values, "delivery": Delivery.FRED}, config.fill), guests=True)
    except (KeyError, TypeError, ValueError):  # a configuration FRED cannot read: say nothing
        return None
    if fred.guest == ev.guest:
        return None
    decisive = [s.rule for s in fred.trace if s.rule.name.startswith("xen.fred.")] or \
               [s.rule for s in fred.trace if s.rule.name == "xen.via_fred"]
    cite = f" ({decisive[-1].cite})" if decisive else ""
    return f"; with FRED (opt_fred=1) the guest sees instead: {guest_detail(fred.guest)}{cite}"


def has_fred(spec) -> bool:
    """Whether the spec's Xen has FRED code: `xen` (master, 4.22) and the specs extending it."""
    return spec.name == "xen" or "xen" in spec.parents


def with_fred(config: Config, ev: Evaluation, spec) -> Evaluation:
    """`ev` with its IDT delivery step saying where FRED differs (see the module docstring)."""
    remark = fred_outcome(config, ev) if has_fred(spec) else None
    if remark is None:
        return ev
    trace = tuple(replace(s, text=s.text + remark) if s.rule.name == IDT_RULE else s for s in ev.trace)
    return replace(ev, trace=trace)
