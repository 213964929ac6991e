"""`pvsmt prove`: check every (invariant, spec) pair, print the table and details."""

from __future__ import annotations

import sys
import time

from . import report
from .discover import invariant_files, pairs
from .errors import InputError, PvsmtError
from .lang.parse import SpecLoader
from .solve import Limits, Prover, Result, Verdict, exit_code


def run(args, overrides: dict[str, object]) -> int:
    start = time.perf_counter()
    loader = SpecLoader()
    todo = pairs(invariant_files(args.paths), args.spec, loader)
    if not todo:
        raise InputError(" ".join(args.paths), "no invariants to prove (the files define none)")
    limits = Limits(rlimit=args.rlimit, timeout_ms=int(args.timeout * 1000))
    prover = Prover(limits, overrides)
    results = [check(prover, inv, spec) for inv, spec in todo]
    print(report.results_table(results))
    for line in report.details(results, args.verbose):
        print(line)
    print()
    print(report.summary(results, time.perf_counter() - start))
    return exit_code(r.verdict for r in results)


def check(prover: Prover, inv, spec) -> Result:
    """One check; a failure inside pvsmt is an `error` verdict, not a crash."""
    try:
        return prover.check(inv, spec)
    except PvsmtError as exc:
        print(f"pvsmt: internal error: {exc}", file=sys.stderr)
        return Result(inv, spec, Verdict.ERROR, 0.0, reason=str(exc))
