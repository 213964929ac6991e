"""`pvsmt prove`: check every (invariant, spec) pair, print the table and details."""

from __future__ import annotations

import os
import sys
import threading
import time

from pathlib import Path

from ..analysis import cache as prove_cache
from ..lang import shipped
from ..lang.discover import invariant_files
from ..errors import InputError, PvsmtError

# The solver side (Z3, the parser, the report) is imported when a run needs it: a run the
# result cache answers imports none of it.


def run(args, overrides: dict[str, object]) -> int:
    start = time.perf_counter()
    check_output(args.output)
    paths = args.paths or [str(shipped.directory("proofs"))]
    files = invariant_files(paths)
    cached = not getattr(args, "no_cache", False) and not args.timings and not prove_cache.disabled()
    name = prove_cache.key(args, files) if cached else None
    if name is not None:
        entry = prove_cache.lookup(name)
        if entry is not None:
            sys.stderr.write(entry["stderr"])
            emit(entry["report"], args.output, entry["written"])
            return entry["code"]
    stderr = sys.stderr = prove_cache.Tee(sys.stderr)
    try:
        code, report, written, verdicts, loader = prove(args, overrides, paths, files, start)
    finally:
        sys.stderr = stderr.stream
    emit(report, args.output, written)
    if name is not None and not {"unknown", "error"} & verdicts:
        probed = [*loader.probed, *(Path("specs") / f"{s}.spec" for s in args.spec or [] if not Path(s).exists())]
        prove_cache.store(name, dict(inputs=prove_cache.inputs(files, loader, probed), code=code, report=report,
                                     written=written, stderr=stderr.text))
    return code


def prove(args, overrides: dict, paths: list[str], files: list[Path], start: float):
    """The run itself: (exit status, report, the line for --output, the verdicts, the spec loader)."""
    from ..lang.discover import pairs
    from ..report.document import prove_document
    from ..report.formats import render, summary
    from ..lang.parse import SpecLoader
    from ..interrupt import install
    from ..analysis.expectation import run_code
    from ..analysis.prove import Limits
    install()  # Ctrl-C stops the solver at once
    loader = SpecLoader()
    todo = pairs(files, [shipped.spec_argument(s) for s in args.spec or []], loader)
    if not todo:
        raise InputError(" ".join(paths), "no invariants to prove (the files define none)")
    limits = Limits(rlimit=args.rlimit, timeout_ms=int(args.timeout * 1000), max_counterexamples=args.max)
    results = check_all(todo, limits, overrides)
    code = run_code(results)
    unused = unused_facts(results) if args.unused_facts else None
    seconds = time.perf_counter() - start if args.timings else None
    doc = prove_document(results, limits, code, seconds, unused, overrides)
    written = f"{summary(doc)}; {args.format} report written to {args.output}"
    return code, render(doc, args.format, args.verbose), written, verdict_labels(results), loader


def verdict_labels(results) -> set[str]:
    """The verdicts given, `unknown` among them where an expectation's witness could not be checked."""
    labels = {r.verdict.label for r in results}
    return labels | ({"unknown"} if any(r.expectation and r.expectation.met is None for r in results) else set())


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


def unused_facts(results: list) -> dict[str, list]:
    """Per spec, the declarations no verdict relied on (proofs' cores, counterexamples' paths)."""
    from ..analysis.provenance import unused
    used: dict[str, set[str]] = {}
    specs = {}
    for r in results:
        specs[r.spec.name] = r.spec
        refs = used.setdefault(r.spec.name, set())
        refs.update(f.ref for f in r.facts)
        for cex in r.counterexamples:
            refs.update(f.ref for f in cex.facts)
    return {name: unused(spec, used[name]) for name, spec in specs.items()}


def check_all(todo, limits, overrides: dict, workers: int = 2) -> list:
    """Check every pair, in order.  Each spec's checks run in one thread with its own
    Prover (and Z3 context), always in the same order, so the results do not depend
    on scheduling; Z3 releases the GIL while it solves, so two specs solve at once."""
    from ..progress import Progress
    from ..analysis.prove import Prover
    from ..backends.encode import spec_key
    progress = Progress("pvsmt prove", len(todo))
    groups: dict[tuple, list[int]] = {}
    keys: dict[str, tuple] = {}
    for i, (_, spec) in enumerate(todo):
        if spec.path not in keys:
            progress.now(f"checking spec {spec.name}")
            check_spec(spec, overrides, limits)
            keys[spec.path] = spec_key(spec)
        groups.setdefault(keys[spec.path], []).append(i)  # specs encoded alike share their proofs
    buckets: list[list[int]] = [[] for _ in range(workers)]
    load = [0] * workers

    def cost(indexes: list[int]) -> int:  # the proofs a group asks for (one per invariant)
        return len({id(todo[i][0]) for i in indexes})
    for indexes in sorted(groups.values(), key=cost, reverse=True):
        k = load.index(min(load))
        buckets[k].extend(indexes)
        load[k] += cost(indexes)

    def run_bucket(indexes: list[int]) -> list[tuple[int, Result]]:
        prover = Prover(limits, overrides)
        out = []
        for i in indexes:
            inv, spec = todo[i]
            progress.now(f"{inv.name} against {spec.name}")
            out.append((i, check(prover, inv, spec)))
            progress.step()
        return out

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
    with progress:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for part in parts:
        if isinstance(part, BaseException):
            raise part
    done = dict(pair for part in parts for pair in part)
    return [done[i] for i in range(len(todo))]


def check_spec(spec, overrides: dict, limits) -> None:
    """Before any proof: the spec (with --set) allows some configuration, and its defaults cover
    every name (spec_check); an empty spec or a contradicting --set is an error, exit 2."""
    from ..backends.smt import GaveUp
    from ..analysis.spec_check import check_defaults, check_space
    try:
        notes = check_space(spec, overrides, limits)
    except GaveUp as exc:  # the checks against this spec will say `unknown` themselves
        notes = [f"{exc}"]
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    check_defaults(spec)


def check(prover, inv, spec):
    """One check, its invariant's expectation judged; a failure inside pvsmt is an `error`
    verdict, not a crash."""
    from ..analysis.expectation import settle
    from ..analysis.prove import Result, Verdict
    try:
        return settle(prover, prover.check(inv, spec))
    except PvsmtError as exc:
        print(f"pvsmt: internal error: {exc}", file=sys.stderr)
        return Result(inv, spec, Verdict.ERROR, 0.0, reason=str(exc))
