"""`pvsmt prove`: check every (invariant, spec) pair, print the table and details."""

from __future__ import annotations

import functools
import gc
import os
import sys
import time
from dataclasses import replace

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


def check_all(todo, limits, overrides: dict, workers: int = 2, what: str = "pvsmt prove") -> list:
    """Check every pair, in order.

    The questions (one per invariant and spec; specs encoded alike ask one, encode.spec_key)
    are split, grouped by spec, into `workers` contiguous runs of equal length, each run in
    a worker process (cli.workers) with its own Prover, always the same way, so the results
    do not depend on scheduling.  Each worker first checks the specs of its run that no
    earlier run has (spec_check); their notes are printed, and the first error raised, in
    the order the specs come, before any result is used.  A spec in error stops the run
    once every spec is checked."""
    from ..progress import Progress
    from . import workers as pool
    specs, runs, owner = plan(todo, workers)
    checked: dict[str, tuple] = {}  # path -> (notes, the error checking the spec raised or None)
    progress = Progress(what, len(todo))

    def on_message(k: int, kind: str, payload) -> None:
        if kind == "now":
            progress.now(payload)
        elif kind == "step":
            progress.step()
        elif kind == "stderr":
            sys.stderr.write(payload)
        elif kind == "checked":
            path, notes, error = payload
            checked[path] = (notes, error)
            if len(checked) == len(owner) and any(e is not None for _, e in checked.values()):
                raise _SpecsFailed()

    jobs = [functools.partial(_run_bucket, [todo[i] + (i,) for unit in run_ for i in unit],
                              [(path, specs[path]) for path in specs if owner.get(path) == k], limits, overrides)
            for k, run_ in enumerate(runs) if run_]
    try:
        with progress:
            parts = pool.run(jobs, on_message)
    except _SpecsFailed:
        parts = []
    for path in specs:
        notes, error = checked.get(path, ((), None))
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        if error is not None:
            raise error
    done = {i: replace(r, invariant=todo[i][0], spec=todo[i][1]) for part in parts for i, r in part}
    return [done[i] for i in range(len(todo))]


class _SpecsFailed(Exception):
    """Every spec is checked and one is in error: no result is needed."""


def plan(todo, workers: int):
    """The specs by path (in the order they come), the runs of units (lists of indexes of `todo`
    that share one question), and which run checks each spec (the first that needs it)."""
    from ..backends.encode import spec_key
    keys: dict[str, tuple] = {}
    specs: dict[str, object] = {}
    units: dict[tuple, list[int]] = {}
    for i, (inv, spec) in enumerate(todo):
        if spec.path not in keys:
            keys[spec.path], specs[spec.path] = spec_key(spec), spec
        units.setdefault((id(inv), keys[spec.path]), []).append(i)  # specs encoded alike share a proof
    rank = {key: n for n, key in enumerate(dict.fromkeys(keys.values()))}
    ordered = sorted(units.values(), key=lambda unit: (rank[keys[todo[unit[0]][1].path]], unit[0]))
    runs = [ordered[len(ordered) * k // workers:len(ordered) * (k + 1) // workers] for k in range(workers)]
    owner: dict[str, int] = {}
    for k, run_ in enumerate(runs):
        for unit in run_:
            for i in unit:
                owner.setdefault(todo[i][1].path, k)
    return specs, runs, owner


def _run_bucket(items, owned, limits, overrides: dict, channel) -> list:
    """One worker's job: check the specs it owns, then its pairs ((invariant, spec, index) in
    order); the results come back without their invariant and spec (the caller has them), their
    counterexamples' configurations read in full (cli.prove.portable).  Garbage is collected less
    often meanwhile (encodings make millions of small objects, few cycles); the collector's
    setting is restored after, for a job run in the command's own process."""
    saved = gc.get_threshold()
    gc.set_threshold(100_000, 50, 100)
    try:
        return _work(items, owned, limits, overrides, channel)
    finally:
        gc.set_threshold(*saved)


def _work(items, owned, limits, overrides: dict, channel) -> list:
    from ..analysis.prove import Prover
    prover = Prover(limits, overrides)
    failed = False
    for path, spec in owned:
        channel.send("now", f"checking spec {spec.name}")
        notes, error = check_spec(spec, overrides, limits, prover.ctx)
        channel.send("checked", (path, notes, error))
        failed = failed or error is not None
    if failed:
        return []
    out = []
    for inv, spec, i in items:
        channel.send("now", f"{inv.name} against {spec.name}")
        out.append((i, portable(check(prover, inv, spec), overrides)))
        channel.send("step")
    return out


def portable(result, overrides: dict):
    """`result` as it can leave its worker: without its invariant and spec, and with every name
    of its counterexamples' configurations that its report reads already read out of the Z3
    model (the model stays behind).  The report reads the same names in the parent: building
    the check's document here reads them."""
    from ..report.document import check_document
    if result.counterexamples:
        check_document(result, overrides=overrides)
        for cex in result.counterexamples:
            cex.config.fill = None
    return replace(result, invariant=None, spec=None)


def check_spec(spec, overrides: dict, limits, ctx=None) -> tuple[list[str], PvsmtError | None]:
    """Before any proof: the spec (with --set) allows some configuration, and its defaults cover
    every name (spec_check); an empty spec or a contradicting --set is an error, exit 2.  Returns
    the notes to print and the error to raise after them, if any."""
    from ..backends.smt import GaveUp
    from ..analysis.spec_check import check_defaults, check_space
    try:
        notes = check_space(spec, overrides, limits, ctx)
    except GaveUp as exc:  # the checks against this spec will say `unknown` themselves
        notes = [f"{exc}"]
    except PvsmtError as exc:
        return [], exc
    try:
        check_defaults(spec)
    except PvsmtError as exc:
        return notes, exc
    return notes, None


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
