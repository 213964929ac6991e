"""`pvsmt validate --xen`: run the Xen plan on a real hypervisor and compare it with the model.

Every observation of the PV test guest is compared with the model's guest-level
prediction under the release's spec.  The prediction already runs on the CPU the
emulator is (its known divergences from the manuals are applied to the hardware
event first), so a disagreement is Xen's or the model's: `uncertain` when the
prediction's path uses a rule the reference marks UNCERTAIN, `unexplained`
otherwise.  A run fails on an unexplained disagreement and on a case the guest could
not run (error, timeout).  That the plan takes every Xen rule a run can take is
checked by the tests, over both guest kinds, both kinds of release and both CPU
vendors (xenplan.coverage).  Each run is one Xen, one guest kind and one CPU vendor
(QEMU's `-cpu max` with the vendor's CPUID: xenrun.QEMU_CPUS); the prediction and the
known divergences applied are those of that vendor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tabulate import tabulate

from ..backends.concrete import ConcreteEnv
from ..lang.expr import Expr
from ..xen.releases import spec_for
from ..lang.spec import Spec
from ..model.vocab import Vendor
from .run import insn_parts, version_number
from .xencases import XenCase
from .xenplan import Predictor, as_observed, describe, observed, plan


@dataclass
class Disagreement:
    case: XenCase
    model: tuple
    xen: tuple
    path: list[str]
    detail: str = ""


@dataclass
class XenRun:
    xen: str
    guest: str
    spec: Spec
    info: dict
    cases: int = 0
    vendor: str = "intel"
    agree: int = 0
    via_emulator: dict[str, int] = field(default_factory=dict)  # emulator divergence id -> cases it shaped
    known: dict[str, int] = field(default_factory=dict)  # known Xen divergence id -> cases it explains
    stale: list = field(default_factory=list)  # known Xen divergences of this version that explain nothing
    uncertain: list[Disagreement] = field(default_factory=list)
    unexplained: list[Disagreement] = field(default_factory=list)
    failed: list[Disagreement] = field(default_factory=list)  # the guest could not run the case

    @property
    def ok(self) -> bool:
        return not self.unexplained and not self.failed and not self.stale


def emulator_divergences(divergences, info: dict, vendor: str = "intel") -> list:
    """The known divergences of the emulator that ran Xen (QEMU, its version, the vendor)."""
    version = version_number(str(info.get("emulator_version", "")))
    return [d for d in divergences if d.applies("qemu", version, vendor)]


VENDORS = ("intel", "amd")


def validate_all(xen: Path, guests, spec: Spec | None, divergences, load, runner=None,
                 vendors=None) -> list[XenRun]:
    """One run per CPU vendor (default: intel and amd) and guest kind (default: pv64, and pv32
    unless the hypervisor lacks CONFIG_PV32), each predicted for that vendor with `spec`, or the
    shipped spec of the release in Xen's banner (`load(name)`)."""
    from ..progress import Progress
    if runner is None:
        from .xenrun import run_xen_cases as runner
    runs = []
    pairs = [(vendor, guest) for vendor in vendors or VENDORS for guest in guests or ("pv64", "pv32")]
    with Progress("pvsmt validate --xen", len(pairs)) as progress:  # stderr, on a terminal only
        for vendor, guest in pairs:
            cases = plan(guest)
            progress.now(f"{vendor} {guest}: Xen and the guest under QEMU, {len(cases)} cases")
            try:
                observations, info = runner(xen, guest, cases, vendor=vendor)
            except RuntimeError as exc:
                why = next((line for line in str(exc).splitlines() if "CONFIG_PV32" in line), "")
                if guests or guest != "pv32" or not why:
                    raise
                runs.append(skipped(xen, guest, why.replace("(XEN)", "Xen:").strip(), vendor))
                progress.step()
                continue
            info.setdefault("vendor", vendor)
            progress.now(f"{vendor} {guest}: comparing with the model")
            chosen = spec if spec is not None else load(spec_for(info["xen_version"]))
            predictor = Predictor(chosen, vendor, emulator_divergences(divergences, info, vendor))
            runs.append(compare(str(xen), guest, chosen, info, cases, observations, predictor, divergences))
            progress.step()
    return runs


def skipped(xen: Path, guest: str, why: str, vendor: str = "intel") -> XenRun:
    """A guest kind the hypervisor cannot run (PV32 without CONFIG_PV32): no cases, and why."""
    return XenRun(str(xen), guest, None, {"skipped": why, "vendor": vendor}, vendor=vendor)


def xen_divergences(divergences, info: dict, vendor: str = "intel") -> list:
    """The known divergences of the Xen build that ran (keyed by its version) on the vendor's CPU."""
    return [d for d in divergences if d.applies("xen", str(info.get("xen_version", "")), vendor)]


def explained_by(entries, case: XenCase, prediction, config, seen: tuple):
    """The known Xen divergence that covers the case and says Xen does what it did, if any."""
    env = ConcreteEnv(config, prediction.evaluation)
    for d in entries:
        if d.when.eval(env) and as_observed(case, prediction.guest, **{
                n: (v.eval(env) if isinstance(v, Expr) else v) for n, v in d.observed.items()}) == seen:
            return d
    return None


def compare(xen: str, guest: str, spec: Spec, info: dict, cases, observations, predictor: Predictor,
            divergences=()) -> XenRun:
    vendor = info.get("vendor", "intel")
    if Vendor.parse(vendor) != predictor.vendor:
        raise ValueError(f"observations on a {vendor} CPU predicted for {predictor.vendor.label}")
    entries = xen_divergences(divergences, info, vendor)
    run = XenRun(xen, guest, spec, info, len(cases), vendor=vendor, known={d.id: 0 for d in entries})
    for case, obs in zip(cases, observations, strict=True):
        p = predictor.predict(case)
        if p.divergence:
            run.via_emulator[p.divergence] = run.via_emulator.get(p.divergence, 0) + 1
        model, seen = as_observed(case, p.guest), observed(obs)
        if model == seen:
            run.agree += 1
            continue
        entry = explained_by(entries, case, p, predictor.config(case), seen)
        if entry is not None:
            run.known[entry.id] += 1
            continue
        d = Disagreement(case, model, seen, [s.text for s in p.evaluation.trace], obs.detail)
        if obs.event in ("error", "timeout"):
            run.failed.append(d)
        elif any(s.rule.uncertain for s in p.evaluation.trace):
            run.uncertain.append(d)
        else:
            run.unexplained.append(d)
    run.stale = [d for d in entries if run.known[d.id] == 0]
    return run


def case_text(case: XenCase) -> str:
    parts = insn_parts(case, f"{case.guest.upper()} {case.guest_mode}")
    if case.insn in ("syscall", "sysenter"):  # the callback the instruction's path reads
        name = "sysenter" if case.insn == "sysenter" else "syscall" if case.mode == "long64" else "syscall32"
        parts.append(f"{name} callback " + ("registered" if getattr(case, f"cb_{name}") else "not registered"))
    if case.insn == "callgate":
        parts.append(gate_text(case))
    parts += [f"TT[{v:#04x}] " + (f"vDPL{dpl}" if present else "null") for v, present, dpl in case.tt]
    if case.tt_if:
        parts.append("TT IF flag set")
    return f"case {case.id}: " + ", ".join(parts)


def gate_text(case: XenCase) -> str:
    """The far CALL's selector and the gate the guest wrote for it."""
    sel = case.gate_selector
    index, table = sel >> 3, "LDT" if sel & 4 else "GDT"
    if table == "GDT" and index == 0:
        return f"null selector {sel:#x}"
    where = f"selector {sel:#06x} ({table}[{index:#x}], RPL{sel & 3})"
    if not case.gate_in_limit:
        return f"{where} beyond the {table} limit"
    gate = f"{'present' if case.gate_present else 'not-present'} gate DPL{case.gate_dpl}"
    if not case.gate_present and case.gate_target_rpl:
        gate += f", target RPL{case.gate_target_rpl}"
    return f"{where}, {gate}" + (", in a page Xen has not validated" if case.gate_fresh_page else "")


def report(run: XenRun, divergences, verbose: bool = False) -> str:
    info = run.info
    if "skipped" in info:
        return f"{run.guest} ({run.vendor}): not run on {run.xen}: {info['skipped']}\n"
    rows = [(f"Xen {info.get('xen_version', '?')}", run.guest, run.vendor, run.spec.name,
             info.get("emulator_version", "?"), run.cases, run.agree, sum(run.known.values()), len(run.uncertain),
             len(run.unexplained), len(run.failed))]
    out = [tabulate(rows, headers=("hypervisor", "guest", "vendor", "spec", "emulator", "cases", "agree",
                                   "known divergence", "uncertain", "unexplained", "not run"))]
    out += ["", f"Xen: {info.get('xen_banner', '?')} ({run.xen}); {info.get('boots', '?')} boot(s), "
                f"{info.get('seconds', '?')} s; CPU: QEMU -cpu {info.get('cpu', '?')} ({run.vendor})",
            f"predicted with spec {run.spec.name} ({run.spec.title}) on the emulator's CPU: the model's hardware "
            f"layer, with the emulator's known divergences applied"]
    by_id = {d.id: d for d in divergences}
    for ident, n in sorted(run.via_emulator.items()):
        d = by_id[ident]
        out += ["", f"emulator divergence {ident} shaped {n} prediction(s) ({d.where}):",
                f"  the emulator: {d.emulator_does}", f"  the manuals:  {d.manuals_say}"]
    for ident, n in sorted(run.known.items()):
        if n:
            d = by_id[ident]
            out += ["", f"known Xen divergence {ident} ({n} cases, {d.where}):",
                    f"  Xen does:     {d.emulator_does}", f"  its spec says: {d.manuals_say}",
                    f"  sources:      {'; '.join(d.cite)}"]
    for d in run.stale:
        out += ["", f"{d.where}: listed divergence {d.id} no longer occurs on Xen {info.get('xen_version', '?')}: "
                    f"remove or narrow the entry"]
    for kind, items in (("UNEXPLAINED", run.unexplained), ("NOT RUN", run.failed), ("uncertain", run.uncertain)):
        shown = items if verbose or kind != "uncertain" else items[:5]
        for x in shown:
            out += ["", f"{kind} ({run.guest} on Xen {info.get('xen_version', '?')}, {run.vendor}) "
                        f"{case_text(x.case)}",
                    f"  model: {describe(x.model)}", f"  Xen:   {describe(x.xen)}"
                    + (f" ({x.detail})" if x.detail else "")]
            out += [f"    {step}" for step in x.path] if verbose else []
        if len(items) > len(shown):
            out.append(f"  ... and {len(items) - len(shown)} more (-v shows all)")
    out += ["", f"{run.cases} cases ({run.guest}, {run.vendor}): {run.agree} agree with the model, {sum(run.known.values())} known divergences, "
                f"{len(run.uncertain)} on UNCERTAIN paths, {len(run.unexplained)} unexplained, {len(run.failed)} not run"
                + (f"; {len(run.stale)} listed divergence(s) no longer occur" if run.stale else "")]
    return "\n".join(out) + "\n"
