"""`pvsmt validate`: run the planned cases on an emulator and compare them with the model.

Every observation is compared with the model's hardware-level prediction.  A
disagreement is `known` when an entry of the known-divergences file explains it
(the case is one the entry covers and the emulator did what the entry says),
`uncertain` when the prediction's path uses a rule the reference marks
UNCERTAIN, and `unexplained` otherwise.  A run fails on an unexplained
disagreement and on an entry that applies to the emulator, version and vendor
run but explained nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from tabulate import tabulate

from ..errors import InputError
from . import known as known_mod
from .cases import Case
from .plan import as_observed, config, coverage, describe, observed, plan, predict

DEFAULT_KNOWN = Path("emulators") / "known-divergences.toml"


@dataclass
class Disagreement:
    case: Case
    model: tuple
    emulator: tuple
    path: list[str]


@dataclass
class VendorRun:
    emulator: str
    vendor: str
    info: dict
    cases: int = 0
    agree: int = 0
    known: dict[str, int] = field(default_factory=dict)
    uncertain: list[Disagreement] = field(default_factory=list)
    unexplained: list[Disagreement] = field(default_factory=list)
    stale: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.unexplained and not self.stale


def known_file(path: Path | None) -> Path:
    if path is not None:
        return path
    if DEFAULT_KNOWN.exists():
        return DEFAULT_KNOWN
    from ..lang import shipped
    return shipped.directory("emulators") / DEFAULT_KNOWN.name


def validate(emulator: str, vendors, divergences, cases: list[Case] | None = None, runner=None) -> list[VendorRun]:
    """Run `cases` (default: the plan) for each vendor; `runner` is emulator.run_cases (for tests)."""
    if runner is None:
        from .emulator import run_cases as runner
    from ..progress import Progress
    cases = plan() if cases is None else cases
    runs = []
    with Progress("pvsmt validate", len(vendors)) as progress:  # stderr, on a terminal only
        for vendor in vendors:
            progress.now(f"{vendor}: {len(cases)} cases under {emulator}")
            observations, info = runner(emulator, vendor, cases)
            progress.now(f"{vendor}: comparing with the model")
            runs.append(compare(emulator, vendor, info, cases, observations, divergences))
            progress.step()
    return runs


def version_number(text: str) -> str:
    """`QEMU emulator version 7.2.22 (Debian ...)` -> `7.2.22`; `Bochs 2.7` -> `2.7`."""
    m = re.search(r"\d+(?:\.\d+)+", text)
    return m.group(0) if m else text


def compare(emulator: str, vendor: str, info: dict, cases, observations, divergences) -> VendorRun:
    version = version_number(str(info.get("emulator_version", "")))
    applicable = [d for d in divergences if d.applies(emulator, version, vendor)]
    run = VendorRun(emulator, vendor, info, len(cases), known={d.id: 0 for d in applicable})
    for case, obs in zip(cases, observations, strict=True):
        ev = predict(case, vendor)
        model, seen = as_observed(ev.hw), observed(obs)
        if model == seen:
            run.agree += 1
            continue
        entry = next((d for d in applicable if d.explains(config(case, vendor), ev, seen)), None)
        if entry is not None:
            run.known[entry.id] += 1
            continue
        disagreement = Disagreement(case, model, seen, [s.text for s in ev.trace])
        uncertain = any(s.rule.uncertain for s in ev.trace)
        (run.uncertain if uncertain else run.unexplained).append(disagreement)
    run.stale = [d for d in applicable if run.known[d.id] == 0]
    return run


def insn_parts(case, who: str) -> list[str]:
    """The words every case report starts with: the instruction, who runs it (`who`), the code
    mode, and the prefix, OF or BOUND range where they apply (a test kernel's or guest's case)."""
    parts = [case.insn.upper() if case.insn != "int_n" else f"INT ${case.vector:#04x}", who, case.mode]
    if case.prefix != "none":
        parts.append(f"{case.prefix} prefix")
    if case.insn == "into":
        parts.append(f"OF={int(case.of)}")
    if case.insn == "bound":
        parts.append("in range" if case.bound_in_range else "out of range")
    return parts


def case_text(case: Case) -> str:
    parts = insn_parts(case, f"CPL{case.cpl}")
    if case.insn == "syscall":
        parts.append(f"EFER.SCE={int(case.efer_sce)}")
    if case.insn == "sysenter":
        parts.append("SYSENTER_CS=" + ("null" if case.sysenter_cs_null else "nonnull"))
    if case.insn == "callgate":
        parts.append(f"{case.gate_table.upper()}[{case.gate_index}] RPL{case.gate_rpl} DPL{case.gate_dpl} "
                     f"present={int(case.gate_present)} in_limit={int(case.gate_in_limit)}")
    for v, present, dpl, gtype in case.idt:
        parts.append(f"IDT[{v:#04x}] present={int(present)} DPL{dpl} {gtype}")
    return f"case {case.id}: " + ", ".join(parts)


def report(runs: list[VendorRun], divergences, verbose: bool = False) -> str:
    rows = [(r.emulator, r.info.get("emulator_version", "?"), r.vendor, r.info.get("cpu_model", "?"), r.cases,
             r.agree, sum(r.known.values()), len(r.uncertain), len(r.unexplained)) for r in runs]
    out = [tabulate(rows, headers=("emulator", "version", "vendor", "CPU model", "cases", "agree",
                                   "known divergence", "uncertain", "unexplained"))]
    by_id = {d.id: d for d in divergences}
    for r in runs:
        for ident, n in r.known.items():
            if n:
                d = by_id[ident]
                out += ["", f"known divergence {ident} ({r.emulator} {r.vendor}, {n} cases, {d.where}):",
                        f"  the emulator: {d.emulator_does}", f"  the manuals:  {d.manuals_say}",
                        f"  sources:      {'; '.join(d.cite)}"]
        for d in r.stale:
            out += ["", f"{d.where}: listed divergence {d.id} no longer occurs on {r.emulator} "
                        f"{r.info.get('emulator_version', '?')} {r.vendor}: remove or narrow the entry"]
        for kind, items in (("UNEXPLAINED", r.unexplained), ("uncertain", r.uncertain)):
            shown = items if verbose or kind == "UNEXPLAINED" else items[:5]
            for x in shown:
                out += ["", f"{kind} ({r.emulator} {r.vendor}) {case_text(x.case)}",
                        f"  model:    {describe(x.model)}", f"  emulator: {describe(x.emulator)}"]
                out += [f"    {step}" for step in x.path] if verbose else []
            if len(items) > len(shown):
                out.append(f"  ... and {len(items) - len(shown)} more (-v shows all)")
    total = sum(r.cases for r in runs)
    bad = sum(len(r.unexplained) for r in runs)
    stale = sum(len(r.stale) for r in runs)
    out += ["", f"{total} cases: {sum(r.agree for r in runs)} agree with the model, "
                f"{sum(sum(r.known.values()) for r in runs)} known divergences, "
                f"{sum(len(r.uncertain) for r in runs)} on UNCERTAIN paths, {bad} unexplained"
                + (f"; {stale} listed divergence(s) no longer occur" if stale else "")]
    return "\n".join(out) + "\n"


def check_plan() -> None:
    """The plan must take every hardware rule a run can take."""
    missing = coverage(plan())
    if missing:
        raise InputError("pvsmt/validate/plan.py", f"no case takes hardware rule(s) {', '.join(missing)}")


def load_divergences(path: Path | None):
    return known_mod.load(known_file(path))
