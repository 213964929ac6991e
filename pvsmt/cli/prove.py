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


def check_all(todo, limits, overrides: dict, workers: int = 2, what: str = "pvsmt prove") -> list:
    """Check every pair, in order.

    The questions (one per invariant and spec; specs encoded alike ask one, encode.spec_key)
    are split, grouped by spec, into `workers` contiguous runs of equal length, each run in
    a thread with its own Prover (and Z3 context), always the same way, so the results do
    not depend on scheduling; Z3 releases the GIL while it solves.  Each thread first checks
    the specs of its run that no earlier run has (spec_check); their notes are printed, and
    the first error raised, in the order the specs come, before any result is used."""
    from ..progress import Progress
    from ..analysis.prove import Prover
    from ..backends.encode import spec_key
    progress = Progress(what, len(todo))
    keys: dict[str, tuple] = {}
    specs: dict[str, object] = {}   # by path, in the order they come
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
    checked: dict[str, tuple] = {}  # path -> (notes, the error checking the spec raised or None)
    specs_done = threading.Barrier(workers)  # no proof before every spec is checked

    def run_bucket(k: int) -> list[tuple[int, Result]]:
        prover = Prover(limits, overrides) if runs[k] else None
        for path, spec in specs.items():
            if owner.get(path) == k:
                progress.now(f"checking spec {spec.name}")
                checked[path] = check_spec(spec, overrides, limits, prover.ctx)
        specs_done.wait()
        if any(error is not None for _, error in checked.values()):
            return []  # the run stops at that error
        out = []
        for unit in runs[k]:
            for i in unit:
                inv, spec = todo[i]
                progress.now(f"{inv.name} against {spec.name}")
                out.append((i, check(prover, inv, spec)))
                progress.step()
        return out

    # Daemon threads, not a pool: on Ctrl-C the main thread stops waiting at once (a pool
    # would finish every query first), and cli.main ends the process without joining them.
    parts: list = [[] for _ in runs]

    def work(k: int) -> None:
        try:
            parts[k] = run_bucket(k)
        except threading.BrokenBarrierError:
            pass  # another thread failed: its exception is the one re-raised
        except BaseException as exc:  # re-raised in the main thread
            parts[k] = exc
            specs_done.abort()

    threads = [threading.Thread(target=work, args=(k,), daemon=True, name=f"pvsmt-prove-{k}")
               for k in range(len(runs))]
    with progress:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for path in specs:
        notes, error = checked.get(path, ((), None))
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        if error is not None:
            raise error
    for part in parts:
        if isinstance(part, BaseException):
            raise part
    done = dict(pair for part in parts for pair in part)
    return [done[i] for i in range(len(todo))]


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
