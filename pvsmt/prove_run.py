"""`pvsmt prove`: check every (invariant, spec) pair, print the table and details."""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor

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
    results = check_all(todo, limits, overrides)
    print(report.results_table(results))
    for line in report.details(results, args.verbose):
        print(line)
    print()
    print(report.summary(results, time.perf_counter() - start))
    return exit_code(r.verdict for r in results)


def check_all(todo, limits: Limits, overrides: dict, workers: int = 2) -> list[Result]:
    """Check every pair, in order.  Each spec's checks run in one thread with its own
    Prover (and Z3 context), always in the same order, so the results do not depend
    on scheduling; Z3 releases the GIL while it solves, so two specs solve at once."""
    groups: dict[str, list[int]] = {}
    for i, (_, spec) in enumerate(todo):
        groups.setdefault(spec.path, []).append(i)
    buckets: list[list[int]] = [[] for _ in range(workers)]
    for indexes in sorted(groups.values(), key=len, reverse=True):
        min(buckets, key=len).extend(indexes)

    def run_bucket(indexes: list[int]) -> list[tuple[int, Result]]:
        prover = Prover(limits, overrides)
        return [(i, check(prover, *todo[i])) for i in indexes]

    with ThreadPoolExecutor(max_workers=workers) as pool:
        done = dict(pair for part in pool.map(run_bucket, buckets) for pair in part)
    return [done[i] for i in range(len(todo))]


def check(prover: Prover, inv, spec) -> Result:
    """One check; a failure inside pvsmt is an `error` verdict, not a crash."""
    try:
        return prover.check(inv, spec)
    except PvsmtError as exc:
        print(f"pvsmt: internal error: {exc}", file=sys.stderr)
        return Result(inv, spec, Verdict.ERROR, 0.0, reason=str(exc))
