"""The two backends agree, as hypothesis properties: a disagreement comes back shrunk.

tests/test_agreement.py enumerates and samples with a seeded loop; here the same check
(tests/agree.py: Z3 given the encoding and exactly the names the concrete evaluator read
must find that consistent and unable to change any outcome field) runs over hypothesis
strategies, so a failure is reported as a smallest configuration: few names changed
from the first values of their domains, small vectors, hardware before Xen.
`derandomize` keeps CI runs reproducible.
"""

from __future__ import annotations

from hypothesis import HealthCheck, assume, find, given, settings
from hypothesis import strategies as st

from agree import Checker, spec
from pvsmt.backends.concrete import Evaluation, evaluate
from pvsmt.backends.configure import resolve
from pvsmt.errors import InputError
from pvsmt.model.vocab import TABLE, CodeMode, GateTable, GateType, Guest, GuestMode, Insn, Prefix, Vendor

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

VECTORS = st.one_of(st.sampled_from([0, 1, 3, 4, 5, 6, 8, 13, 14, 0x80, 0x82]), st.integers(0, 255))


def tt(v: int, f: str) -> str:
    return TABLE["tt"].knob_name(v, f)


def idt(v: int, f: str) -> str:
    return TABLE["idt"].knob_name(v, f)


@st.composite
def xen_settings(draw, insns=tuple(Insn)) -> dict:
    """A situation of the xen spec: every situation knob, the callbacks, the trap-table
    entries of the vector and of the exceptions Xen injects."""
    insn = draw(st.sampled_from(list(insns)))
    vector = draw(VECTORS)
    s = {
        "vendor": draw(st.sampled_from(list(Vendor))), "guest": draw(st.sampled_from(list(Guest))),
        "guest_mode": draw(st.sampled_from(list(GuestMode))), "mode": draw(st.sampled_from(list(CodeMode))),
        "cpl": draw(st.integers(0, 3)), "insn": insn, "vector": vector,
        "prefix": draw(st.sampled_from(list(Prefix))) if insn == Insn.INT_N else Prefix.NONE,
        "of": draw(st.booleans()), "bound.in_range": draw(st.booleans()),
        "gate.table": draw(st.sampled_from(list(GateTable))), "gate.index": draw(st.integers(0, 8191)),
        "gate.rpl": draw(st.integers(0, 3)), "gate.in_limit": draw(st.booleans()),
        "gate.present": draw(st.booleans()), "gate.dpl": draw(st.integers(0, 3)),
        "cb.syscall": draw(st.booleans()), "cb.syscall32": draw(st.booleans()),
        "cb.sysenter": draw(st.booleans()), "debugger": draw(st.booleans()),
        "sig_read_fault": draw(st.booleans()),
    }
    for v in sorted({vector, 1, 3, 4, 5, 6, 11, 13, 14}):
        s[tt(v, "present")] = draw(st.booleans())
        s[tt(v, "dpl")] = draw(st.integers(0, 3))
    return s


@st.composite
def bare_settings(draw) -> dict:
    """A bare-x86 situation: any vector, its gate (type included) and the gates a fault
    cascades through."""
    v = draw(st.integers(0, 255))
    s = {"insn": draw(st.sampled_from(list(Insn))), "vector": v, "cpl": draw(st.integers(0, 3)),
         "mode": draw(st.sampled_from(list(CodeMode))), "vendor": draw(st.sampled_from(list(Vendor))),
         idt(v, "dpl"): draw(st.integers(0, 3)), idt(v, "present"): draw(st.booleans()),
         idt(v, "type"): draw(st.sampled_from(list(GateType)))}
    for e in (6, 8, 11, 13):
        if e != v:
            s[idt(e, "present")] = draw(st.booleans())
            s[idt(e, "type")] = draw(st.sampled_from(list(GateType)))
    return s


_CHECKERS: dict[str, Checker] = {}


def checker(name: str) -> Checker:
    if name not in _CHECKERS:
        _CHECKERS[name] = Checker(spec(name))
    return _CHECKERS[name]


def configuration(name: str, s: dict):
    """The spec's configuration with these settings, or None where the axioms reject them."""
    try:
        return resolve(spec(name), s).config
    except InputError as exc:
        assert "contradictory settings" in exc.message, exc  # only the axioms may reject one
        return None


def disagreement(name: str, s: dict, guests: bool = True, doctor=None) -> str | None:
    config = configuration(name, s)
    if config is None:
        return None
    ev = evaluate(config, guests=guests)
    if doctor is not None:
        ev = doctor(ev)
    return checker(name).disagreement(config, ev, set(ev.reads))


@SETTINGS
@given(xen_settings())
def test_xen_backends_agree(s):
    assume(configuration("xen", s) is not None)
    problem = disagreement("xen", s)
    assert problem is None, f"{problem}\nsettings: {s}"


@SETTINGS
@given(xen_settings())
def test_xen_fred_backends_agree(s):
    s = {**s, "guest": Guest.PV64}  # xen-fred runs PV64 only
    assume(configuration("xen-fred", s) is not None)
    problem = disagreement("xen-fred", s)
    assert problem is None, f"{problem}\nsettings: {s}"


@SETTINGS
@given(bare_settings())
def test_bare_x86_backends_agree_at_every_vector(s):
    problem = disagreement("bare-x86", s, guests=False)
    assert problem is None, f"{problem}\nsettings: {s}"


def test_a_disagreement_comes_back_shrunk():
    """A doctored evaluator (the guest's vector off by one on INT $0x80's fast path) is found,
    and shrunk to INT $0x80 with every other name at its simplest value."""
    from dataclasses import replace

    def doctor(ev: Evaluation) -> Evaluation:
        if ev.guest is not None and any(st_.rule.name.startswith("xen.int80") for st_ in ev.trace):
            return Evaluation(ev.hw, replace(ev.guest, vector=ev.guest.vector + 1), ev.trace, ev.reads)
        return ev

    found = find(xen_settings(insns=(Insn.INT3, Insn.SYSCALL, Insn.INT_N)), lambda s: disagreement("xen", s, doctor=doctor) is not None,
                 settings=settings(max_examples=500, deadline=None, derandomize=True, database=None,
                                   suppress_health_check=list(HealthCheck)))
    assert found["insn"] == Insn.INT_N and found["vector"] == 0x80
    assert found["gate.index"] == 0 and not found["of"] and not found["debugger"]  # shrunk
