"""`pvsmt check-xen`: extract a spec from a Xen tree, prove the invariants, diff it against a reference.

The command a Xen CI job runs on a proposed change.  The invariants checked are
those written for the reference spec (`specs xen` in a .inv file, for `--against
xen`), now against the extracted spec; the diff compares the extracted spec with
the reference and, with `--expect`, with the intended differences.  One report;
the exit status is that of the worst outcome, in prove's order (2, 1, 3, 4, 0).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from . import extract as ex
from . import shipped
from .diff import Differ
from .diff_report import diff_text
from .discover import invariant_files, pairs
from .document import prove_document
from .formats import render, render_junit
from .lang.parse import SpecLoader, load_expected
from .prove_run import check_all, check_output, emit
from .report import versions
from .solve import Limits, exit_code, worst_code

def run(args) -> int:
    start = time.perf_counter()
    check_output(args.output)
    config, source = ex.configuration(args.config, args.variant)
    loader = SpecLoader()
    against = loader.load(shipped.spec_argument(args.against))
    result = ex.extract(args.tree, config, source, with_fred=args.fred == "on")
    with tempfile.TemporaryDirectory(prefix="pvsmt-check-xen-") as tmp:
        spec_file = Path(tmp) / "xen-tree.spec"
        spec_file.write_text(ex.spec_text(result, "xen-tree", loader))
        extracted = loader.load(spec_file)
        # reports name the tree, never the temporary file (gone after the run); facts cite xen-tree.spec:N
        extracted.path = f"{ex.shown(args.tree)}, extracted as xen-tree.spec"
        limits = Limits(rlimit=args.rlimit, timeout_ms=int(args.timeout * 1000), max_counterexamples=args.max)
        todo = [(inv, extracted) for inv, spec in pairs(invariant_files(args.proofs or [str(shipped.directory("proofs"))]), None, loader)
                if spec.name == against.name]
        results = check_all(todo, limits, {}) if todo else []
        prove_code = exit_code(r.verdict for r in results) if results else 0
        expected = load_expected(shipped.expect_argument(args.expect)) if args.expect else []
        level = "guest" if against.has_guests and extracted.has_guests else "hardware"
        diff = Differ(against, extracted, level, limits).run(expected)
    code = worst_code((prove_code, diff.exit_code))
    doc = prove_document(results, limits, prove_code)
    emit(report(args, result, source, against, todo, doc, diff, level, code, start), args.output,
         f"check-xen: exit {code}; {args.format} report written to {args.output}")
    return code


def report(args, result, source, against, todo, doc, diff, level, code, start) -> str:
    """The one report, in --format text, json or junit."""
    if args.format == "json":
        from .diff_report import diff_json
        return json.dumps({"schema": "pvsmt-check-xen/1", **versions(), "tree": ex.shown(args.tree),
                           "layout": result.layout, "configuration": source, "against": against.name,
                           "exit_code": code, "prove": doc, "diff": diff_json(diff)}, indent=2) + "\n"
    diff_words = diff_text(diff, args.verbose)
    if args.format == "junit":
        failure = None if diff.exit_code == 0 else (
            "differences from spec " + against.name + (" (incomplete)" if not diff.complete else ""))
        extra = (("pvsmt diff", f"tree against {against.name} ({level} level)", "pvsmt.diff", failure,
                  diff_words),)
        return render_junit(doc, args.verbose, extra)
    parts = [f"pvsmt check-xen {ex.shown(args.tree)} ({result.layout} layout; {source}) against spec "
             f"{against.name}\n\n",
             f"== invariants written for spec {against.name}, checked against the tree ({len(todo)} check{'' if len(todo) == 1 else 's'})\n",
             render(doc, "text", args.verbose) if todo else "no invariant names this spec\n",
             f"\n== the tree against spec {against.name} ({level} level)\n", diff_words + "\n"]
    tail = f" in {time.perf_counter() - start:.1f}s" if args.timings else ""
    parts.append(f"\ncheck-xen: invariants exit {doc['exit_code']}, diff exit {diff.exit_code}: exit {code}{tail}\n")
    return "".join(parts)
