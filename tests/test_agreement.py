"""The Z3 encoding and the concrete evaluator agree.

Both run the same model functions (pvsmt.model), one over Python values and one
over Z3 terms, so any difference is a bug in a backend (an Ops method, the table
encoding, constant folding, a fact's encoding).  For a configuration evaluated
concretely, Z3 is given the encoding's constraints and the values of exactly the
names the concrete evaluator read; it must find that consistent and must not be
able to make any outcome field differ (tests/agree.py).  Names not read are left
free, so each check also proves the outcome does not depend on them.

Exhaustive checks enumerate configurations by what the evaluator reads: a name of
the enumeration is branched on only when the evaluation reads it.  Since unread
names are free in Z3, every leaf covers every value of the names it did not read,
and the whole product of the enumeration's domains is covered.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
from collections import Counter

import pytest

from agree import ROOT, Checker, spec
from pvsmt.backends.concrete import ConcreteEnv, Config, Evaluation, broken_axioms, evaluate
from pvsmt.backends.configure import resolve
from pvsmt.errors import InputError
from pvsmt.model.vocab import (KNOBS, TABLE, CodeMode, GateTable, GateType, Guest, GuestEvent, GuestMode, HwEvent,
                         Insn, Prefix, SysenterCS, Vendor)

BOOLS = [False, True]


def idt(v: int, f: str) -> str:
    return TABLE["idt"].knob_name(v, f)


def tt(v: int, f: str) -> str:
    return TABLE["tt"].knob_name(v, f)


# ---- enumeration driven by reads ----------------------------------------------------------

class Need(Exception):
    """The evaluation read a name of the enumeration that has no value yet."""

    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


class Partial:
    """A configuration in the making: chosen values, enumeration names, the spec's values.

    Names outside the enumeration take the spec's value: a conditional spec fact
    (`sysenter_cs = null when vendor == amd`) is evaluated over this configuration,
    so reading it reads (and enumerates) the names its condition reads.
    """

    def __init__(self, spec_obj, base: dict, dims: dict, chosen: dict):
        self.spec, self.base, self.dims, self.chosen = spec_obj, base, dims, chosen

    def get(self, name: str):
        if name in self.chosen:
            return self.chosen[name]
        if name in self.dims:
            raise Need(name)
        value = self.base[name]
        for fact in self.spec.facts.get(name, []):
            if fact.when is not None and len(fact.values) == 1 and fact.when.eval(ConcreteEnv(self)):
                value = fact.values[0]
        return value


def leaves(spec_obj, dims: dict, fixed: dict | None = None):
    """Every well-formed configuration of `dims` (up to unread names), with its evaluation."""
    base = resolve(spec_obj, {}).config.values
    guests = spec_obj.has_guests
    stack = [dict(fixed or {})]
    while stack:
        chosen = stack.pop()
        config = Partial(spec_obj, base, dims, chosen)
        try:
            if broken_axioms(config, guests=guests):
                continue
            evaluation = evaluate(config, guests=guests)
        except Need as need:
            stack += [{**chosen, need.name: v} for v in reversed(dims[need.name])]
            continue
        yield chosen, config, evaluation


def check_all(spec_obj, dims: dict, minimum: int, fixed: dict | None = None) -> Counter:
    checker = Checker(spec_obj)
    seen: Counter = Counter()
    for chosen, config, evaluation in leaves(spec_obj, dims, fixed):
        problem = checker.disagreement(config, evaluation, set(evaluation.reads))
        assert problem is None, f"{problem}\nconfiguration: {chosen}"
        seen["hw." + evaluation.hw.event.label] += 1
        if evaluation.guest is not None:
            seen["guest." + evaluation.guest.event.label] += 1
    assert sum(n for k, n in seen.items() if k.startswith("hw.")) >= minimum  # the enumeration did run
    return seen


def hardware_dims(vectors, gate_index, gate_rpl) -> dict:
    dims = {
        "vendor": list(Vendor), "mode": list(CodeMode), "cpl": [0, 1, 2, 3], "insn": list(Insn),
        "vector": list(vectors), "prefix": list(Prefix), "of": BOOLS, "bound.in_range": BOOLS,
        "efer.sce": BOOLS, "sysenter_cs": list(SysenterCS),
        "gate.table": list(GateTable), "gate.index": list(gate_index), "gate.rpl": list(gate_rpl),
        "gate.in_limit": BOOLS, "gate.present": BOOLS, "gate.dpl": [0, 1, 2, 3],
    }
    for v in set(vectors) | {1, 3, 4}:
        dims[idt(v, "dpl")] = [0, 1, 2, 3]
        dims[idt(v, "present")] = BOOLS
    for v in (5, 6, 8, 11, 13):  # exceptions raised, and the gates a nested fault needs
        dims[idt(v, "present")] = BOOLS
    return dims


def test_hardware_layer_exhaustive_small():
    """bare-x86: vendor x mode x cpl x insn x prefix x of x bound x SCE x SYSENTER_CS x call gate
    x present/DPL of the target gate (and of the gates a fault cascades through)."""
    dims = hardware_dims(vectors=[3, 0x21, 0x80], gate_index=[0, 0x200], gate_rpl=[0, 3])
    seen = check_all(spec("bare-x86"), dims, minimum=1000)
    idt_events = {e for e in HwEvent if e != HwEvent.FRED}  # bare-x86 delivers through its IDT
    assert {"hw." + e.label for e in idt_events} <= set(seen), seen


@pytest.mark.slow
def test_hardware_layer_exhaustive_full():
    dims = hardware_dims(vectors=[0, 1, 2, 3, 4, 8, 13, 0x21, 0x80, 0x82, 0xff],
                         gate_index=[0, 8191], gate_rpl=[0, 1, 2, 3])
    check_all(spec("bare-x86"), dims, minimum=7000)


def guest_dims(vectors, gate_dpl) -> dict:
    dims = {
        "vendor": list(Vendor), "guest": list(Guest), "guest_mode": list(GuestMode), "mode": list(CodeMode),
        "cpl": [0, 1, 2, 3], "insn": list(Insn), "vector": list(vectors), "prefix": list(Prefix),
        "of": BOOLS, "bound.in_range": BOOLS,
        "gate.table": list(GateTable), "gate.index": [0, 0x200], "gate.rpl": [1, 3], "gate.in_limit": BOOLS,
        "gate.present": BOOLS, "gate.dpl": list(gate_dpl),
        "cb.syscall": BOOLS, "cb.syscall32": BOOLS, "cb.sysenter": BOOLS,
        "debugger": BOOLS, "sig_read_fault": BOOLS,
    }
    for v in vectors:
        dims[tt(v, "dpl")] = [0, 1, 2, 3]
        dims[tt(v, "present")] = BOOLS
    for v in (1, 3, 4, 5, 6, 11, 13, 14):  # exceptions Xen injects
        dims[tt(v, "present")] = BOOLS
    return dims


def test_guest_layer_exhaustive_small():
    """xen: every situation knob, callbacks and the trap-table entries involved."""
    dims = guest_dims(vectors=[3, 0x21, 0x80, 0x82], gate_dpl=[0, 1, 3])
    seen = check_all(spec("xen"), dims, minimum=1000)
    reached = {"guest." + e.label for e in (GuestEvent.NONE, GuestEvent.EXCEPTION, GuestEvent.HYPERCALL,
                                            GuestEvent.CALLBACK, GuestEvent.DOMAIN_CRASH,
                                            GuestEvent.DOMAIN_PAUSED, GuestEvent.CALL_GATE)}
    assert reached <= set(seen), seen


@pytest.mark.slow
def test_guest_layer_exhaustive_full():
    dims = guest_dims(vectors=[1, 2, 3, 4, 8, 13, 0x21, 0x80, 0x82, 0xff], gate_dpl=[0, 1, 2, 3])
    check_all(spec("xen"), dims, minimum=3000)


# ---- many random configurations of the xen spec ---------------------------------------------

VECTORS = [0, 1, 2, 3, 4, 5, 6, 8, 13, 14, 0x20, 0x21, 0x80, 0x81, 0x82, 0xff]


def random_settings(rng: random.Random) -> dict:
    guest = rng.choice(list(Guest))
    guest_mode = rng.choice(list(GuestMode))
    insn = rng.choice(list(Insn))
    if guest == Guest.PV64:
        cpl = 3
    elif guest_mode == GuestMode.KERNEL:
        cpl = 1
    else:
        cpl = rng.choice([2, 3])
    s = {
        "vendor": rng.choice(list(Vendor)), "guest": guest, "guest_mode": guest_mode,
        # Sometimes contradictory (PV32 in 64-bit code, a stray CPL): the axioms must reject it.
        "mode": CodeMode.COMPAT if guest == Guest.PV32 and rng.random() < 0.8 else rng.choice(list(CodeMode)),
        "cpl": cpl if rng.random() < 0.9 else rng.randrange(4),
        "insn": insn, "vector": rng.choice(VECTORS),
        "prefix": rng.choice(list(Prefix)) if insn == Insn.INT_N else Prefix.NONE,
        "of": rng.random() < 0.5, "bound.in_range": rng.random() < 0.5,
        "gate.table": rng.choice(list(GateTable)), "gate.index": rng.choice([0, 1, 0x10, 0x200, 8191]),
        "gate.rpl": rng.randrange(4), "gate.in_limit": rng.random() < 0.8,
        "gate.present": rng.random() < 0.8, "gate.dpl": rng.randrange(4),
        "cb.syscall": rng.random() < 0.5, "cb.syscall32": rng.random() < 0.5, "cb.sysenter": rng.random() < 0.5,
        "debugger": rng.random() < 0.2, "sig_read_fault": rng.random() < 0.2,
    }
    for v in set(VECTORS) | {11}:
        s[tt(v, "present")] = rng.random() < 0.75
        s[tt(v, "dpl")] = rng.randrange(4)
    return s


def test_random_xen_configurations_agree():
    rng = random.Random(0x5eed)
    xen = spec("xen")
    checker = Checker(xen)
    knobs = {k.name for k in KNOBS}
    checked, skipped = 0, 0
    events: Counter = Counter()
    rules: set[str] = set()
    while checked < 300:
        settings = random_settings(rng)
        try:
            config = resolve(xen, settings).config
        except InputError as exc:
            # Only the axioms may reject a random configuration (everything else is in the spec).
            assert "contradictory settings" in exc.message, exc
            skipped += 1
            continue
        evaluation = evaluate(config)
        # As specified: every knob and the table entries read ...
        problem = checker.disagreement(config, evaluation, knobs | set(evaluation.reads))
        assert problem is None, f"{problem}\nsettings: {settings}"
        # ... and, stronger, only what was read: the rest cannot change the outcome.
        problem = checker.disagreement(config, evaluation, set(evaluation.reads))
        assert problem is None, f"(reads only) {problem}\nsettings: {settings}"
        checked += 1
        events[evaluation.guest.event] += 1
        rules |= {s.rule.name for s in evaluation.trace}
    assert 0 < skipped < checked / 2, (checked, skipped)  # the axioms did reject some, not most
    assert {GuestEvent.EXCEPTION, GuestEvent.HYPERCALL, GuestEvent.CALLBACK, GuestEvent.DOMAIN_CRASH,
            GuestEvent.CALL_GATE} <= set(events), events
    # The sample reaches most of Xen's rules, not one corner of the model.
    assert len({r for r in rules if r.startswith("xen.")}) >= 30, sorted(rules)


def test_random_bare_x86_idt_agrees_over_every_vector():
    """Random vectors over 0..255 with random gates (type included): the table encoding at any index."""
    rng = random.Random(1)
    bare = spec("bare-x86")
    checker = Checker(bare)
    for _ in range(150):
        v = rng.randrange(256)
        settings = {"insn": rng.choice([Insn.INT_N] * 3 + list(Insn)), "vector": v, "cpl": rng.randrange(4),
                    "mode": rng.choice(list(CodeMode)), "vendor": rng.choice(list(Vendor)),
                    idt(v, "dpl"): rng.randrange(4), idt(v, "present"): rng.random() < 0.7,
                    idt(v, "type"): rng.choice(list(GateType))}
        for e in (6, 8, 11, 13):
            settings[idt(e, "present")] = rng.random() < 0.8
            settings[idt(e, "type")] = rng.choice(list(GateType))
        config = resolve(bare, settings).config
        evaluation = evaluate(config, guests=False)
        problem = checker.disagreement(config, evaluation, set(evaluation.reads))
        assert problem is None, f"{problem}\nsettings: {settings}"


# ---- the check itself can fail --------------------------------------------------------------

def test_a_doctored_outcome_is_caught():
    xen = spec("xen")
    config = resolve(xen, {"guest": Guest.PV64, "guest_mode": GuestMode.USER, "insn": Insn.INT_N,
                           "vector": 0x80, tt(0x80, "present"): True}).config
    evaluation = evaluate(config)
    checker = Checker(xen)
    assert checker.disagreement(config, evaluation, set(evaluation.reads)) is None
    from dataclasses import replace
    wrong = Evaluation(evaluation.hw, replace(evaluation.guest, vector=13), evaluation.trace, evaluation.reads)
    problem = checker.disagreement(config, wrong, set(evaluation.reads))
    assert problem is not None and "guest.vector: concrete 13, z3 128" in problem
    wrong = Evaluation(replace(evaluation.hw, event=HwEvent.NONE), evaluation.guest, evaluation.trace,
                       evaluation.reads)
    assert "hw.event" in checker.disagreement(config, wrong, set(evaluation.reads))


def test_an_impossible_configuration_is_caught():
    xen = spec("xen")
    config = Config(dict(resolve(xen, {"vendor": Vendor.AMD, "insn": Insn.SYSENTER}).config.values))
    evaluation = evaluate(config)
    config.values["sysenter_cs"] = SysenterCS.NONNULL  # xen.spec: null on AMD
    problem = Checker(xen).disagreement(config, evaluation, {"vendor", "sysenter_cs"})
    assert problem is not None and "impossible" in problem


def test_too_few_names_fixed_is_caught():
    """Leaving a name the outcome depends on free must be reported (the check is not vacuous)."""
    bare = spec("bare-x86")
    config = resolve(bare, {"insn": Insn.INT_N, "vector": 0x21, "cpl": 3, idt(0x21, "dpl"): 0}).config
    evaluation = evaluate(config, guests=False)
    names = set(evaluation.reads) - {idt(0x21, "dpl")}
    assert "hw.vector" in Checker(bare).disagreement(config, evaluation, names)


# ---- the concrete side runs without Z3 -----------------------------------------------------

def test_concrete_evaluator_and_configure_do_not_import_z3():
    script = textwrap.dedent(f"""
        import sys
        sys.modules['z3'] = None          # any `import z3` now raises ImportError
        from pathlib import Path
        from pvsmt.lang.parse import SpecLoader
        from pvsmt.backends.configure import parse_setting, resolve
        from pvsmt.backends.concrete import evaluate
        spec = SpecLoader().load(Path({str(ROOT / 'specs' / 'xen.spec')!r}))
        settings = dict(parse_setting(a) for a in
                        ['guest=pv64', 'guest_mode=user', 'insn=int_n', 'vector=0x21', 'tt.0x21.dpl=3',
                         'tt.0x21.present=1'])
        ev = evaluate(resolve(spec, settings).config)
        assert sys.modules['z3'] is None
        assert not any(m.startswith('z3.') for m in sys.modules), sorted(sys.modules)
        assert 'pvsmt.backends.encode' not in sys.modules and 'pvsmt.analysis.prove' not in sys.modules
        print(ev.guest.event.label, ev.guest.vector, ev.guest.type.label)
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["exception", "33", "sw_int"]
