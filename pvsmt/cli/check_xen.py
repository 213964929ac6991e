"""`pvsmt check-xen`: extract a spec from a Xen tree, prove the invariants, diff it, say what was verified.

The command a Xen CI job runs on a proposed change.

* What is read from the tree: `pvsmt extract`'s facts (the IDT gates, EFER.SCE, SYSENTER_CS,
  the call-gate audit's presence, `swint_emul`, whether FRED can be enabled), each citing its
  file and line; the release (xen/Makefile) and the configuration.
* What is taken from the model: the code of the Xen functions the model encodes
  (pvsmt.xen.functions).  Their text in the tree is compared with the texts of the release the
  model describes; a guest-level verdict resting on a function whose text differs is
  `unverified` (exit 3), not `proved`.  Hardware-level verdicts rest on no Xen function.
* The reference spec (`--against`, by default the tree's release model for its configuration:
  xen-pv-n for CONFIG_PV=n, xen-fred with --fred on, else pvsmt.xen.releases' spec of the release);
  with CONFIG_PV32=n the invariants that speak only of PV32 guests are `not-applicable`
  (vacuous on the reference spec too once its guests are those of the tree).
* `--base OLD`: the diff is the change's, OLD's extracted spec against the tree's (`--expect`
  lists the intended differences), and the functions the change edits are named.
* `--boot`: Xen built from the tree (pvsmt.validate.xenbuild) runs the real-Xen validation
  with the tree's extracted spec as the prediction; `unverified` verdicts become `proved` when
  the boot exercises every rule of each changed function and agrees on every case, `refuted`
  when it disagrees.

One report; the exit status is the worst outcome, in prove's order (2, 1, 3, 4, 0).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..xen import extract as ex
from ..lang import shipped
from ..xen import functions as xf
from ..xen import source as xs
from ..backends.configure import parse_setting
from ..analysis.diff import Differ
from ..analysis.expectation import status
from ..report.diff import diff_text
from ..lang.discover import invariant_files, pairs
from ..report.document import Report, prove_document
from ..errors import InputError
from ..progress import Progress
from ..report.formats import render, render_junit
from ..lang.parse import SpecLoader, load_expected
from .prove import check, check_all, check_output, emit
from ..xen.releases import model_of
from ..report.wording import versions
from ..analysis.prove import Limits, Prover, Verdict, worst_code

SCHEMA = "pvsmt-check-xen/2"
#: exit status of each verdict label check-xen can give
CODES = {"proved": 0, "not-applicable": 0, "refuted": 1, "error": 2, "unknown": 3, "unverified": 3, "vacuous": 4}


@dataclass
class Boot:
    """What booting the tree's Xen said."""

    xen: str
    seconds_note: str
    runs: list
    agree: int = 0
    cases: int = 0
    disagreements: list = field(default_factory=list)   # (guest, case text, model, xen, rules on its path)
    confirmed: list = field(default_factory=list)       # changed functions the boot checks entirely
    partial: dict = field(default_factory=dict)         # changed function -> rules no boot case takes

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.runs)


def default_against(result: ex.Extraction, model: str | None) -> tuple[str, str]:
    """The reference spec for the tree's release and configuration, and why."""
    if not result.config["CONFIG_PV"]:
        return "xen-pv-n", "CONFIG_PV=n"
    if result.fred is not None:
        return "xen-fred", "FRED delivery (--fred on)"
    if model is None:
        release, where = xs.release_lines(result.tree)
        raise InputError(where, f"Xen {xs.release_text(release)}: pvsmt has no spec of this release (4.17.0 and "
                                f"later); pass --against SPEC to compare with one anyway")
    return model, f"the model of Xen {xs.release_text(result.release)}"


def _load_extracted(result: ex.Extraction, name: str, loader: SpecLoader, tmp: str, shown_as: str):
    spec_file = Path(tmp) / f"{name}.spec"
    spec_file.write_text(ex.spec_text(result, name, loader))
    spec = loader.load(spec_file)
    # reports name the tree, never the temporary file (gone after the run); facts cite NAME.spec:N
    spec.path = f"{shown_as}, extracted as {name}.spec"
    return spec


def run(args) -> int:
    start = time.perf_counter()
    check_output(args.output)
    with Progress("pvsmt check-xen") as progress:  # stderr, on a terminal only: each stage as it starts
        return _run(args, start, progress)


def _run(args, start: float, progress: Progress) -> int:
    config, source = ex.configuration(args.config, args.variant)
    loader = SpecLoader()
    progress.now(f"reading {ex.shown(args.tree)}")
    result = ex.extract(args.tree, config, source, with_fred=args.fred == "on")
    if args.base:
        progress.now(f"reading {ex.shown(args.base)}")
    base = ex.extract(args.base, config, source, with_fred=args.fred == "on") if args.base else None
    model = model_of(result.release)
    delivery = "fred" if result.fred is not None else "idt"
    against_name, why = (args.against, "--against") if args.against else default_against(result, model)
    against = loader.load(shipped.spec_argument(against_name))
    limits = Limits(rlimit=args.rlimit, timeout_ms=int(args.timeout * 1000), max_counterexamples=args.max)
    with tempfile.TemporaryDirectory(prefix="pvsmt-check-xen-") as tmp:
        extracted = _load_extracted(result, "xen-tree", loader, tmp, ex.shown(args.tree))
        todo = [(inv, extracted) for inv, spec in pairs(invariant_files(args.proofs or [str(shipped.directory("proofs"))]), None, loader)
                if spec.name == against.name]
        progress.clear()  # prove's own progress, while it proves
        results = check_all(todo, limits, {}, what="pvsmt check-xen: proving") if todo else []
        progress.now("invariants the build excludes")
        not_applicable = _not_applicable(results, extracted, against, limits)
        expected = load_expected(shipped.expect_argument(args.expect)) if args.expect else []
        progress.clear()  # diff's own progress, while it enumerates
        if base is not None:
            old = _load_extracted(base, "xen-base", loader, tmp, ex.shown(args.base))
            level = "guest" if old.has_guests and extracted.has_guests else "hardware"
            diff = Differ(old, extracted, level, limits).run(expected)
        else:
            level = "guest" if against.has_guests and extracted.has_guests else "hardware"
            diff = Differ(against, extracted, level, limits).run(expected)
        progress.now("comparing the functions the model encodes with the release's texts")
        functions = xf.compare(args.tree, model, delivery)
        by_change = xf.compare_trees(args.tree, args.base, delivery) if args.base else None
        doc = prove_document(results, limits, 0)
        _apply_functions(doc, todo, results, not_applicable, functions, by_change)
        progress.clear()  # the build prints its own lines
        boot = _boot(args, result, loader, tmp, functions, delivery) if args.boot else None
        if boot is not None:
            _apply_boot(doc, boot, functions)
    _recount(doc)
    codes = [doc.exit_code, diff.exit_code] + ([0 if boot.ok else 1] if boot is not None else [])
    code = worst_code(codes)
    ctx = dict(result=result, base=base, source=source, against=against, why=why, todo=todo, doc=doc, diff=diff,
               level=level, functions=functions, by_change=by_change, boot=boot, model=model, delivery=delivery)
    emit(report(args, ctx, code, start), args.output, f"check-xen: exit {code}; {args.format} report written to {args.output}")
    return code


# ---- verdicts ------------------------------------------------------------------------------------

def _not_applicable(results, extracted, against, limits) -> set[int]:
    """Indexes of the vacuous verdicts that are vacuous on the reference too once its guests are the
    tree's (CONFIG_PV32=n: an invariant about PV32 guests only speaks of nothing this build runs)."""
    tree_guests, ref_guests = set(extracted.guests), set(against.guests)
    if len(tree_guests) != 1 or not tree_guests < ref_guests:
        return set()
    setting = dict([parse_setting(f"guest={next(iter(tree_guests)).name.lower()}")])
    prover = Prover(limits, setting)
    return {i for i, r in enumerate(results)
            if r.verdict is Verdict.VACUOUS and check(prover, r.invariant, against).verdict is Verdict.VACUOUS}


def _apply_functions(doc, todo, results, not_applicable, functions: xf.Comparison, by_change) -> None:
    """`unverified` for every guest-level proof while a function the model encodes differs."""
    changed = "; ".join(c.text() for c in functions.changed)
    if functions.note and not functions.changed:
        changed = functions.note
    for i, (check_doc, r) in enumerate(zip(doc.checks, results)):
        if i in not_applicable:
            check_doc.verdict = "not-applicable"
            check_doc.reason = ("only configurations this build excludes (CONFIG_PV32=n): vacuous on the "
                                   "reference spec too when its guests are the tree's")
            continue
        check_doc.rests_on = ([f.name for f in xf.functions_for(functions.delivery)]
                                 if r.invariant.guest_level else [])
        if check_doc.verdict == "proved" and r.invariant.guest_level and functions.changed:
            check_doc.verdict = "unverified"
            check_doc.reason = f"unverified: {changed}"


def _recount(doc: Report) -> None:
    doc.recount()
    doc.exit_code = worst_code(status(CODES[c.verdict], c.expected is not None, c.as_expected)
                               for c in doc.checks) if doc.checks else 0


# ---- --boot --------------------------------------------------------------------------------------

BOOT_SCOPE = ("the boot builds the tree with CONFIG_PV=y, CONFIG_PV32=y, CONFIG_DEBUG=n (whatever --config says), "
              "runs it under QEMU (TCG, `-cpu max` with Intel's and with AMD's CPUID; IDT delivery: no FRED) with "
              "pvsmt's PV test guest as dom0, and compares about 2,800 PV64 and 1,350 PV32 cases per vendor with "
              "the model's prediction under "
              "the tree's extracted spec.  It exercises the Xen rules a run can take (pvsmt/validate/xenplan.py); "
              "it cannot exercise an attached debugger, a call gate the CPU transfers through, #GP with EXT, nested faults, "
              "or FRED (xenplan.NOT_VALIDATED), nor real hardware's differences from QEMU.  A changed function is confirmed only when every "
              "rule that encodes it is exercised and every case agrees.")


def _boot(args, result: ex.Extraction, loader, tmp, functions: xf.Comparison, delivery: str) -> Boot:
    from ..validate import run as val
    from ..validate import xenvalidate as xv
    from ..validate.xenbuild import build_xen
    from ..validate.xenplan import NOT_VALIDATED, Predictor
    started = time.perf_counter()
    xen = build_xen(args.tree, progress=lambda line: print(line, file=sys.stderr))
    built = time.perf_counter()
    config = ex.read_config(xen.parent / "config")
    booted = ex.extract(args.tree, config, "the boot build's .config")
    spec = _load_extracted(booted, "xen-tree-boot", loader, tmp, ex.shown(args.tree))
    divergences = val.load_divergences(None)
    try:
        runs = xv.validate_all(xen, None, spec, divergences, load=lambda name: loader.load(shipped.spec_argument(name)))
    except (RuntimeError, ValueError, OSError) as exc:
        raise InputError(f"--boot {xen}", f"{type(exc).__name__}: {exc}") from None
    done = time.perf_counter()
    boot = Boot(str(xen), f"build {built - started:.0f}s (cached builds: 0s), boot and cases {done - built:.0f}s", runs)
    for r in runs:
        if r.spec is None:
            continue
        boot.cases += r.cases
        boot.agree += r.agree + sum(r.known.values())
        vendor = getattr(r, "vendor", "intel")
        predictor = Predictor(r.spec, vendor, xv.emulator_divergences(divergences, r.info, vendor))
        for d in r.unexplained + r.failed:        # an UNCERTAIN rule's disagreement refutes nothing
            rules = [s.rule.name for s in predictor.predict(d.case).evaluation.trace]
            boot.disagreements.append((f"{r.guest} ({vendor})", xv.case_text(d.case), xv.describe(d.model),
                                       xv.describe(d.xen), rules))
    ran_pv32 = any(r.guest == "pv32" and r.spec is not None for r in runs)
    for c in functions.changed:
        enc = next(f for f in xf.FUNCTIONS if f.name == c.function)
        missing = [rule for rule in enc.rules if rule in NOT_VALIDATED or rule.startswith("xen.fred")
                   or (not ran_pv32 and rule in PV32_ONLY)]
        if delivery != "idt" or missing:
            boot.partial[c.function] = missing or ["(FRED delivery: the boot uses the IDT)"]
        else:
            boot.confirmed.append(c.function)
    return boot


PV32_ONLY = ("xen.int82.hypercall", "xen.cstar.pv32", "xen.gp.gate")


def _apply_boot(doc, boot: Boot, functions: xf.Comparison) -> None:
    """unverified -> refuted when the boot disagrees; -> proved when it checks every changed function."""
    for c in doc.checks:
        if c.verdict != "unverified":
            continue
        if boot.disagreements:
            guest, case, model, xen, rules = boot.disagreements[0]
            touched = sorted({f.name for f in xf.FUNCTIONS for r in rules if r in f.rules}
                             & {ch.function for ch in functions.changed})
            c.verdict = "refuted"
            c.reason = (f"refuted by booting the tree's Xen: {len(boot.disagreements)} case(s) disagree with the model, "
                           f"e.g. {guest} {case}: model {model}, Xen {xen}"
                           + (f" (its path runs through changed {', '.join(touched)})" if touched else "")
                           + "; the proof's premise (the model describes this code) is false here")
        elif not boot.partial:
            c.verdict = "proved"
            c.reason = (f"confirmed by booting the tree's Xen: {boot.agree} of {boot.cases} cases agree, and they "
                           f"exercise every rule of {', '.join(boot.confirmed) or 'the changed functions'}")
            c.boot = "confirmed"
        else:
            gaps = "; ".join(f"{f}: {', '.join(rules)}" for f, rules in sorted(boot.partial.items()))
            c.reason += f"; the boot agrees on {boot.agree} of {boot.cases} cases but cannot exercise {gaps}"


# ---- the report ----------------------------------------------------------------------------------

def read_from_tree(result: ex.Extraction) -> list[dict]:
    """What the extracted spec says, and where in the tree it was read."""
    def at(where) -> str:
        return ex.in_tree(result, where) if where is not None else result.config_source
    out = []
    first = min(result.gates.values(), key=lambda g: (g.where.path, g.where.line))
    files = sorted({ex.in_tree(result, g.where).rsplit(":", 1)[0] for g in result.gates.values()})
    out.append({"fact": f"IDT: {len(result.gates)} gates (DPL, type, entry) ({result.layout} layout)",
                "where": ", ".join(files) + (f"; type {at(result.gate_type[1])}" if result.gate_type else "")})
    _ = first
    out.append({"fact": "guest kinds (CONFIG_PV, CONFIG_PV32)", "where": result.config_source})
    out.append({"fact": "release", "where": f"xen/Makefile: Xen {xs.release_text(result.release)}"})
    if result.efer_sce:
        out.append({"fact": f"efer.sce = {int(result.efer_sce[0])}", "where": at(result.efer_sce[1])})
    for vendor, (value, where, _t) in sorted(result.sysenter_cs.items()):
        out.append({"fact": f"sysenter_cs = {value} when vendor == {vendor}", "where": at(where)})
    if result.gate_audit:
        out.append({"fact": f"gate_audit = {int(result.gate_audit[0])} (check_descriptor exists; its body is "
                            f"taken from the model)", "where": at(result.gate_audit[1])})
    if result.swint_emul:
        out.append({"fact": f"swint_emul = {result.swint_emul[0]}", "where": at(result.swint_emul[1])})
    f = result.fred_support
    out.append({"fact": "FRED possible" if f else "FRED not possible",
                "where": at(f.param) if f else "no boolean_param(\"fred\", ...) under xen/arch/x86"})
    if result.fred:
        out.append({"fact": "delivery fred (--fred on)", "where": at(result.fred[0])})
    return out


def functions_json(functions: xf.Comparison, by_change) -> dict:
    changed = {c.function: c for c in functions.changed}
    edited = {c.function for c in by_change or []}
    rows = []
    for enc in xf.functions_for(functions.delivery):
        got = functions.found.get(enc.name)
        status = changed[enc.name].why if enc.name in changed else "same"
        row = {"function": enc.name, "where": got.where if got else None, "status": status, "rules": list(enc.rules)}
        if by_change is not None:
            row["edited_by_change"] = enc.name in edited
        rows.append(row)
    return {"release_model": functions.model, "delivery": functions.delivery, "reference_from": list(functions.sources),
            "note": functions.note or None, "functions": rows}


def boot_json(boot: Boot | None) -> dict | None:
    if boot is None:
        return None
    return {"xen": boot.xen, "ok": boot.ok, "cases": boot.cases, "agree": boot.agree,
            "disagreements": [{"guest": g, "case": c, "model": m, "xen": x, "rules": r}
                              for g, c, m, x, r in boot.disagreements],
            "confirmed": boot.confirmed, "not_exercised": boot.partial, "scope": BOOT_SCOPE}


def report(args, ctx: dict, code: int, start: float) -> str:
    """The one report, in --format text, json or junit."""
    result, against, doc, diff, functions = ctx["result"], ctx["against"], ctx["doc"], ctx["diff"], ctx["functions"]
    base, boot, by_change = ctx["base"], ctx["boot"], ctx["by_change"]
    diff_name = f"the change: {ex.shown(args.base)} -> the tree" if base is not None else f"the tree against spec {against.name}"
    if args.format == "json":
        from ..report.diff import diff_json
        return json.dumps({"schema": SCHEMA, **versions(), "tree": ex.shown(args.tree),
                           "base": ex.shown(args.base) if base is not None else None,
                           "layout": result.layout, "configuration": ctx["source"],
                           "release": xs.release_text(result.release), "release_model": ctx["model"],
                           "delivery": ctx["delivery"], "against": against.name, "against_why": ctx["why"],
                           "exit_code": code, "read_from_tree": read_from_tree(result),
                           "taken_from_model": functions_json(functions, by_change),
                           "prove": doc.json(), "diff_of": diff_name, "diff": diff_json(diff), "boot": boot_json(boot)},
                          indent=2) + "\n"
    diff_words = diff_text(diff, args.verbose)
    if args.format == "junit":
        failure = None if diff.exit_code == 0 else (
            f"differences in {diff_name}" + (" (incomplete)" if not diff.complete else ""))
        extra = [("pvsmt diff", diff_name, "pvsmt.diff", failure, diff_words)]
        suite = f"pvsmt check-xen [taken from the model of {functions.model or 'no release'}]"
        changed = {c.function: c for c in functions.changed}
        for enc in xf.functions_for(functions.delivery):
            got = functions.found.get(enc.name)
            c = changed.get(enc.name)
            text = f"{enc.name}: {got.where if got else 'absent'}; encoded by {', '.join(enc.rules)}"
            extra.append((suite, enc.name, "pvsmt.functions", f"unverified: {c.text()}" if c else None, text))
        if boot is not None:
            extra.append(("pvsmt check-xen --boot", "boot", "pvsmt.boot",
                          None if boot.ok else f"{len(boot.disagreements)} case(s) disagree", boot_text(boot)))
        return render_junit(doc, args.verbose, tuple(extra))
    head = (f"pvsmt check-xen {ex.shown(args.tree)}" + (f" --base {ex.shown(args.base)}" if base is not None else "")
            + f" ({result.layout} layout; {ctx['source']})\nXen {xs.release_text(result.release)}, release model "
            f"{ctx['model'] or 'none'}, {ctx['delivery'].upper()} delivery; reference spec {against.name} ({ctx['why']})\n\n")
    parts = [head, "== read from the tree\n"]
    parts += [f"  {r['fact']}: {r['where']}\n" for r in read_from_tree(result)]
    parts.append(f"\n== taken from the model of release {functions.model or '(none)'} ({functions.delivery.upper()} "
                 f"delivery): the code of these functions, compared with the release's text\n")
    if functions.sources:
        parts.append(f"  reference texts from {', '.join(functions.sources)}\n")
    if functions.note:
        parts.append(f"  {functions.note}\n")
    fj = functions_json(functions, by_change)
    for row in fj["functions"]:
        mark = {"same": "same", "changed": "CHANGED", "absent": "ABSENT", "no reference": "NO REFERENCE"}[row["status"]]
        edited = " (edited by the change)" if row.get("edited_by_change") else ""
        parts.append(f"  {mark:<12} {row['function']:<28} {row['where'] or '-'}{edited}\n")
    parts.append("  every guest-level verdict rests on all of these; hardware-level verdicts on none\n")
    parts += [f"\n== invariants written for spec {against.name}, checked against the tree ({len(ctx['todo'])} "
              f"check{'' if len(ctx['todo']) == 1 else 's'})\n",
              render(doc, "text", args.verbose) if ctx["todo"] else "no invariant names this spec\n",
              f"\n== {diff_name} ({ctx['level']} level)\n", diff_words + "\n"]
    if boot is not None:
        parts += ["\n== --boot: Xen built from the tree, run with the tree's extracted spec as the prediction\n",
                  boot_text(boot)]
    tail = f" in {time.perf_counter() - start:.1f}s" if args.timings else ""
    unverified = doc.summary.get("unverified", 0)
    parts.append(f"\ncheck-xen: invariants exit {doc.exit_code}"
                 + (f" ({unverified} unverified)" if unverified else "")
                 + f", diff exit {diff.exit_code}" + (f", boot {'ok' if boot.ok else 'FAILED'}" if boot else "")
                 + f": exit {code}{tail}\n")
    return "".join(parts)


def boot_text(boot: Boot) -> str:
    out = [f"  {boot.xen}: {boot.agree} of {boot.cases} cases agree with the model ({boot.seconds_note})"]
    for r in boot.runs:
        if r.spec is None:
            out.append(f"  {r.guest}: not run: {r.info.get('skipped')}")
    for g, case, model, xen, rules in boot.disagreements[:10]:
        out += [f"  DISAGREES ({g}) {case}", f"    model: {model}", f"    Xen:   {xen}",
                f"    model path: {' -> '.join(rules)}"]
    if len(boot.disagreements) > 10:
        out.append(f"  ... and {len(boot.disagreements) - 10} more")
    if boot.confirmed:
        out.append(f"  confirmed by the boot (every rule exercised, every case agrees): {', '.join(boot.confirmed)}"
                   if not boot.disagreements else f"  exercised: {', '.join(boot.confirmed)}")
    for f, rules in sorted(boot.partial.items()):
        out.append(f"  not confirmable by a boot: {f} (rules no case takes: {', '.join(rules)})")
    out.append("  scope: " + BOOT_SCOPE)
    return "\n".join(out) + "\n"
