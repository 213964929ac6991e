"""The shipped invariants are proved; every false fixture is refuted with the right counterexample."""

from __future__ import annotations

from pathlib import Path

import pytest

from pvsmt.backends.concrete import ConcreteEnv
from pvsmt.lang.discover import find_spec, invariant_files
from pvsmt.lang.parse import SpecLoader, load_invariants
from pvsmt.analysis.prove import Prover, Verdict

ROOT = Path(__file__).resolve().parent.parent
LOADER = SpecLoader()


def checks(directory: Path):
    for f in invariant_files([str(directory)]):
        for inv in load_invariants(f):
            for name, where in inv.specs:
                yield pytest.param(inv, LOADER.load(find_spec(name, f.parent, where)),
                                   id=f"{f.stem}:{inv.name}[{name}]")


@pytest.fixture(scope="module")
def prover():
    return Prover()


@pytest.mark.parametrize("inv,spec", list(checks(ROOT / "proofs")))
def test_shipped_invariant_is_proved(prover, inv, spec):
    result = prover.check(inv, spec)
    assert result.verdict is Verdict.PROVED, (result.verdict, result.reason, result.counterexample)


def test_at_least_20_invariants_proved_against_xen(prover):
    proved = [inv for inv, spec in (p.values for p in checks(ROOT / "proofs"))
              if spec.name == "xen" and prover.check(inv, spec).verdict is Verdict.PROVED]
    assert len(proved) >= 20


FALSE = list(checks(ROOT / "tests" / "fixtures" / "false"))


def test_there_are_false_fixtures():
    assert len(FALSE) >= 8


@pytest.mark.parametrize("inv,spec", FALSE)
def test_false_fixture_is_refuted_with_its_witness(prover, inv, spec):
    assert inv.expect == "refuted" and inv.witness is not None, "a false fixture needs expect/witness"
    result = prover.check(inv, spec)
    assert result.verdict is Verdict.REFUTED, (result.verdict, result.reason)
    cex = result.counterexample
    env = ConcreteEnv(cex.config, cex.evaluation)
    assert inv.witness.eval(env), "the counterexample found does not satisfy the witness"
    assert not inv.prove.eval(env)
    # Not luck: the solver shows that every counterexample satisfies the witness.
    assert prover.violations_satisfy(inv, spec, inv.witness) is True
