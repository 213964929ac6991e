"""`pvsmt prove`: check every (invariant, spec) pair, print the table and details."""

from __future__ import annotations

import os
import sys
import threading
import time

from pathlib import Path

from . import shipped
from .discover import invariant_files, pairs
from .document import prove_document
from .errors import InputError, PvsmtError
from .formats import render, summary
from .lang.parse import SpecLoader
from .provenance import unused
from .smt import GaveUp
from .spec_check import check_defaults, check_space
from .solve import Limits, Prover, Result, Verdict, exit_code


def run(args, overrides: dict[str, object]) -> int:
    start = time.perf_counter()
    check_output(args.output)
    loader = SpecLoader()
    paths = args.paths or [str(shipped.directory("proofs"))]
    todo = pairs(invariant_files(paths), [shipped.spec_argument(s) for s in args.spec or []], loader)
    if not todo:
        raise InputError(" ".join(paths), "no invariants to prove (the files define none)")
    limits = Limits(rlimit=args.rlimit, timeout_ms=int(args.timeout * 1000), max_counterexamples=args.max)
    results = check_all(todo, limits, overrides)
    code = exit_code(r.verdict for r in results)
    unused = unused_facts(results) if args.unused_facts else None
    seconds = time.perf_counter() - start if args.timings else None
    doc = prove_document(results, limits, code, seconds, unused, overrides)
    emit(render(doc, args.format, args.verbose), args.output,
         f"{summary(doc)}; {args.format} report written to {args.output}")
    return code


def check_output(output: Path | None) -> None:
    """Before any work: --output must name a file that can be written (its directory exists)."""
    if output is None:
        return
    parent = output.parent if str(output.parent) else Path(".")
    if output.is_dir():
        raise InputError(f"--output {output}", "is a directory, expected a file name")
    if not parent.is_dir():
        raise InputError(f"--output {output}", f"no such directory: {parent}")
    if not os.access(parent, os.W_OK) or (output.exists() and not os.access(output, os.W_OK)):
        raise InputError(f"--output {output}", "cannot write here: permission denied")


def emit(text: str, output: Path | None, written: str | None = None) -> None:
    """`text` to the --output file (then `written`, if any, to stdout), or to stdout."""
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text)
    except OSError as exc:
        raise InputError(f"--output {output}", f"cannot write: {exc.strerror or exc}") from None
    if written:
        print(written)


def unused_facts(results: list[Result]) -> dict[str, list]:
    """Per spec, the declarations no verdict relied on (proofs' cores, counterexamples' paths)."""
    used: dict[str, set[str]] = {}
    specs = {}
    for r in results:
        specs[r.spec.name] = r.spec
        refs = used.setdefault(r.spec.name, set())
        refs.update(f.ref for f in r.facts)
        for cex in r.counterexamples:
            refs.update(f.ref for f in cex.facts)
    return {name: unused(spec, used[name]) for name, spec in specs.items()}


def check_all(todo, limits: Limits, overrides: dict, workers: int = 2) -> list[Result]:
    """Check every pair, in order.  Each spec's checks run in one thread with its own
    Prover (and Z3 context), always in the same order, so the results do not depend
    on scheduling; Z3 releases the GIL while it solves, so two specs solve at once."""
    groups: dict[str, list[int]] = {}
    for i, (_, spec) in enumerate(todo):
        if spec.path not in groups:
            check_spec(spec, overrides, limits)
        groups.setdefault(spec.path, []).append(i)
    buckets: list[list[int]] = [[] for _ in range(workers)]
    for indexes in sorted(groups.values(), key=len, reverse=True):
        min(buckets, key=len).extend(indexes)

    def run_bucket(indexes: list[int]) -> list[tuple[int, Result]]:
        prover = Prover(limits, overrides)
        return [(i, check(prover, *todo[i])) for i in indexes]

    # Daemon threads, not a pool: on Ctrl-C the main thread stops waiting at once (a pool
    # would finish every query first), and cli.main ends the process without joining them.
    parts: list = [[] for _ in buckets]

    def work(k: int) -> None:
        try:
            parts[k] = run_bucket(buckets[k])
        except BaseException as exc:  # re-raised in the main thread
            parts[k] = exc

    threads = [threading.Thread(target=work, args=(k,), daemon=True, name=f"pvsmt-prove-{k}")
               for k in range(len(buckets))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for part in parts:
        if isinstance(part, BaseException):
            raise part
    done = dict(pair for part in parts for pair in part)
    return [done[i] for i in range(len(todo))]


def check_spec(spec, overrides: dict, limits: Limits) -> None:
    """Before any proof: the spec (with --set) allows some configuration, and its defaults cover
    every name (spec_check); an empty spec or a contradicting --set is an error, exit 2."""
    try:
        notes = check_space(spec, overrides, limits)
    except GaveUp as exc:  # the checks against this spec will say `unknown` themselves
        notes = [f"{exc}"]
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    check_defaults(spec)


def check(prover: Prover, inv, spec) -> Result:
    """One check; a failure inside pvsmt is an `error` verdict, not a crash."""
    try:
        return prover.check(inv, spec)
    except PvsmtError as exc:
        print(f"pvsmt: internal error: {exc}", file=sys.stderr)
        return Result(inv, spec, Verdict.ERROR, 0.0, reason=str(exc))
