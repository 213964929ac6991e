"""Shipped invariants run in both delivery modes, or say which one they hold in."""

from __future__ import annotations

from pathlib import Path

from pvsmt.lang.parse import SpecLoader, load_invariants
from pvsmt.analysis.prove import Prover, Verdict

ROOT = Path(__file__).resolve().parent.parent


def shipped():
    for f in sorted((ROOT / "proofs").glob("*.inv")):
        yield from load_invariants(f)


def test_every_invariant_names_both_modes_or_says_it_holds_in_one():
    for inv in shipped():
        specs = {name for name, _ in inv.specs}
        if "xen" in specs and "xen-fred" not in specs:
            assert " only" in inv.description, f"{inv.name}: runs against xen only, and does not say why"


def test_invariants_marked_idt_only_are_not_proved_meaningfully_under_fred():
    """An 'IDT delivery only' guest-level invariant that FRED also proves should list xen-fred instead."""
    fred = SpecLoader().load(ROOT / "specs" / "xen-fred.spec")
    prover = Prover()
    for inv in shipped():
        specs = {name for name, _ in inv.specs}
        if "xen-fred" in specs or "IDT delivery only: FRED" not in inv.description or not inv.guest_level:
            continue
        assert prover.check(inv, fred).verdict != Verdict.PROVED, inv.name
