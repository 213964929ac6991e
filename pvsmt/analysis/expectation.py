"""What an invariant expects of its own verdict, and whether it got it.

An invariant may say `expect refuted` (or `proved`, `vacuous`): a documented false
claim, such as a sentence of pv-traps.rst that Xen's code does not keep (a finding),
is kept as an invariant that must stay refuted.  With `witness EXPR`, every
counterexample must also satisfy EXPR (asked of the solver, not of the counterexamples
shown), so the refutation is the documented one and not some other.

The verdict itself is unchanged; the expectation decides what it costs:

  met         exit status 0 (the run succeeds while the finding holds)
  not met     the verdict's own status, or 1 where that is 0: an expected refutation
              that now proves (the finding is gone: drop the `expect`), or one whose
              counterexamples leave the witness
  unknown     3: the witness could not be checked
  error, unknown verdicts keep their status: an expectation never hides them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .prove import Result, Verdict, worst_code


@dataclass(frozen=True)
class Expectation:
    verdict: str        # what the invariant expects: refuted, proved or vacuous
    met: bool | None    # None: the solver could not say whether the witness holds
    why: str            # one sentence for the report when not met


def settle(prover, result: Result) -> Result:
    """`result` with its invariant's expectation judged (unchanged without one)."""
    inv = result.invariant
    if inv.expect is None or result.verdict in (Verdict.ERROR, Verdict.UNKNOWN):
        return result
    if result.verdict.label != inv.expect:
        gone = " (the documented behaviour is gone: update or drop the `expect`)" if inv.expect == "refuted" else ""
        return replace(result, expectation=Expectation(
            inv.expect, False, f"expected {inv.expect}, but {result.verdict.label}{gone}"))
    if inv.witness is None:
        return replace(result, expectation=Expectation(inv.expect, True, ""))
    inside = prover.violations_satisfy(inv, result.spec, inv.witness)
    where = f"`{inv.witness.text}` (line {inv.witness.where.line})"
    if inside is None:
        why = f"refuted as expected, but whether every counterexample satisfies the witness {where} is unknown"
    elif inside:
        why = ""
    else:
        why = f"refuted as expected, but some counterexample lies outside the witness {where}"
    return replace(result, expectation=Expectation(inv.expect, inside, why))


def status(verdict_code: int, expected: bool, met: bool | None) -> int:
    """The exit status of one verdict (its own `verdict_code`) under an expectation, if any."""
    if not expected or verdict_code in (2, 3):  # error and unknown (or unverified) are never hidden
        return verdict_code
    if met:
        return 0
    if met is None:
        return 3
    return verdict_code or 1


def code(result: Result) -> int:
    """The exit status one result contributes."""
    e = result.expectation
    return status(result.verdict.exit_code, e is not None, e.met if e else None)


def run_code(results) -> int:
    """The exit status of a run: the worst of its results', in prove's order (2, 1, 3, 4, 0)."""
    return worst_code(code(r) for r in results)
