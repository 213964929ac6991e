"""`pvsmt reproduce`: one configuration of the model, run on a real Xen.

A configuration (`--set NAME=VALUE` as for `pvsmt explain`, or a counterexample
from a `prove`/`explain`/`diff` JSON report) is mapped to one case of the PV
test guest (the inverse of validate.xenplan.situation), Xen is booted once
under QEMU with the guest as dom0, and the model's prediction for that Xen's
release spec is printed beside what the guest observed.

The mapping is faithful or refused: every name the model reads on the
configuration's path must have, in the case the guest runs, the value asked
for.  A configuration the guest cannot set up (a call gate its GDT or LDT
cannot hold, a debugger, a crafted null trap-table entry with a vDPL, a
what-if over the spec's facts, FRED) is an InputError (exit 2) saying why.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass, replace
from pathlib import Path

from ..backends.concrete import Config, evaluate
from ..backends.configure import parse_setting, resolve
from ..errors import InputError
from ..lang.spec import Spec, is_system
from ..model.vocab import NONE, Abi, Delivery, GateTable, Insn, Vendor, domain_of

#: Why the PV test guest cannot give a name the value a configuration asks for.
CANNOT = {
    "debugger": "no debugger (gdbsx) is attached in a test boot",
    "sig_read_fault": "the test stub is never within 5 bytes of an unmapped page",
    "tt.": "the guest nulls a trap-table entry by not registering it, so its vDPL is 0; a null entry "
           "with a vDPL (arch_set_info_guest, or a PV32 null selector) cannot be set up",
    "cpl": "the guest mode fixes the CPL (PV64: 3; PV32 kernel: 1, user: 3)",
}

#: Xen commits that changed a system fact between releases (releases.RELEASES), for the write-up.
CHANGES = {
    "swint_emul": ("a934a600c4 (master, 4.22.0: pv_emulate_sw_interrupt decodes the instruction): "
                   "backported as 260740e1aa (stable-4.19, 4.19.5), 45d18b05c0 (stable-4.20, 4.20.3) "
                   "and 805e2b8ada (stable-4.21, 4.21.1); never to stable-4.17 or stable-4.18"),
    "idt.0x80.type": "a48bb129f1 (XSA-446: interrupt gates for 0x80 and 0x82), from 4.17.3",
    "idt.0x82.type": "a48bb129f1 (XSA-446: interrupt gates for 0x80 and 0x82), from 4.17.3",
}


# ---- input ----------------------------------------------------------------------------------

def _setting(name: str, value, where: str) -> tuple[str, object]:
    if isinstance(value, bool):
        value = int(value)
    try:
        return parse_setting(f"{name}={value}")
    except InputError as exc:
        raise InputError(where, str(exc)) from None


def from_report(path: Path, index: int) -> tuple[dict, str]:
    """The situation of counterexample `index` (1-based) of a JSON report, and a line saying
    which one it is.  System facts (IDT, swint_emul, ...) are left to the booted Xen's spec."""
    where = str(path)
    try:
        doc = json.loads(Path(path).read_text())
    except OSError as exc:
        raise InputError(where, f"cannot read: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}:{exc.lineno}", f"not JSON: {exc.msg}") from None
    if not isinstance(doc, dict):
        raise InputError(where, "not a pvsmt JSON report")
    found: list[tuple[dict, str]] = []
    if isinstance(doc.get("checks"), list):  # pvsmt prove --format json (and check-xen's proofs)
        for check in doc["checks"]:
            for n, cex in enumerate(check.get("counterexamples") or [], 1):
                knobs = {k["name"]: k["value"] for k in cex.get("knobs", []) if k.get("value") is not None}
                found.append((knobs, f"counterexample {n} of {check.get('invariant')} on spec {check.get('spec')}"))
    elif isinstance(doc.get("differences"), list):  # pvsmt diff --json
        old, new = (doc.get(k, {}).get("name", "?") for k in ("old", "new"))
        for d in doc["differences"]:
            found.append((dict(d.get("witness") or {}), f"witness of {d.get('name')} ({old} vs {new})"))
    elif isinstance(doc.get("config"), dict):  # pvsmt explain --json
        if doc.get("overrides"):
            raise InputError(where, "a what-if (" + " ".join(doc["overrides"]) + ") overrides the spec's facts: "
                                    "a real Xen has its own")
        found.append((doc["config"], f"explain of spec {doc.get('spec')}"))
    else:
        raise InputError(where, "not a pvsmt JSON report (expected prove --format json, explain --json or "
                                "diff --json)")
    if not found:
        raise InputError(where, "the report has no counterexample (nothing was refuted or different)")
    if not 1 <= index <= len(found):
        raise InputError(f"--index {index}", f"{where} has {len(found)} counterexample(s): 1..{len(found)}")
    knobs, what = found[index - 1]
    out = {}
    for name, value in knobs.items():
        if is_system(name):
            continue
        n, v = _setting(name, value, f"{where}: {what}")
        out[n] = v
    return out, what


def from_settings(args: list[str]) -> dict:
    out: dict[str, object] = {}
    for arg in args:
        name, value = parse_setting(arg)
        if is_system(name):
            raise InputError(f"--set {arg}", f"{name} is a fact of the spec (a what-if): a real Xen has its own")
        if name in out and out[name] != value:
            raise InputError(f"--set {arg}", f"{name} is already set to another value")
        out[name] = value
    return out


# ---- the case -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Plan:
    """One configuration as the case the PV test guest runs."""

    spec: Spec
    config: Config
    case: object  # XenCase
    vendor: str


def _reason(name: str) -> str:
    for prefix, why in CANNOT.items():
        if name == prefix or name.startswith(prefix):
            return why
    return "the PV test guest does not set it"


def gate_fields(config: Config) -> dict:
    """The XenCase fields of a far CALL's selector and gate (xenplan.gate_knobs inverted); none for
    another instruction."""
    if config.get("insn") != Insn.CALLGATE:
        return {}
    ti = 4 if config.get("gate.table") == GateTable.LDT else 0
    return dict(gate_selector=config.get("gate.index") << 3 | ti | config.get("gate.rpl"),
                gate_present=config.get("gate.present"), gate_dpl=config.get("gate.dpl"),
                gate_in_limit=config.get("gate.in_limit"))


def plan_case(spec: Spec, settings: dict) -> Plan:
    """The XenCase that runs the configuration `settings` of `spec`, or an InputError saying why none can."""
    from .xencases import XenCase, validate
    from .xenplan import Predictor

    config = resolve(spec, settings).config
    if not spec.has_guests:
        raise InputError(spec.path, f"spec {spec.name} has no PV guests: nothing to run on Xen")
    if config.get("delivery") == Delivery.FRED:
        raise InputError(spec.path, f"spec {spec.name} is FRED delivery: that needs FRED hardware (Intel "
                                    f"Panther Lake and later), which QEMU's TCG does not emulate")
    if config.get("abi") == Abi.DOC:
        raise InputError(spec.path, f"spec {spec.name} is the documented ABI, not a Xen: pass --spec with a "
                                    f"release spec, or none for the booted Xen's")
    ev = evaluate(config, guests=True)
    tt = []
    for v in range(256):
        present, dpl = config.get(f"tt.{v:#04x}.present"), config.get(f"tt.{v:#04x}.dpl")
        if (present, dpl) != (True, 0):
            tt.append((v, present, dpl if present else 0))
    case = XenCase(
        0, guest=config.get("guest").label, guest_mode=config.get("guest_mode").label,
        mode=config.get("mode").label, insn=config.get("insn").label, vector=config.get("vector"),
        prefix=config.get("prefix").label if config.get("insn").label == "int_n" else "none",
        of=config.get("of"), bound_in_range=config.get("bound.in_range"), tt=tuple(tt),
        cb_syscall=config.get("cb.syscall"), cb_syscall32=config.get("cb.syscall32"),
        cb_sysenter=config.get("cb.sysenter"), **gate_fields(config))
    if case.guest == "pv32" and not case.cb_syscall:
        case = replace(case, cb_syscall=True)  # Xen has no 64-bit syscall callback for PV32
    try:
        validate(case)
    except ValueError as exc:
        raise InputError("configuration", f"the PV test guest cannot run it: {exc}") from None
    vendor = config.get("vendor").label
    runs = Predictor(spec, vendor).config(case)
    for name in ev.reads:
        if is_system(name) or runs.get(name) == config.get(name):
            continue
        fmt = domain_of(name).format
        raise InputError("configuration", f"{name} = {fmt(config.get(name))} is on the model's path, but "
                                          f"{_reason(name)} (the guest would run {name} = {fmt(runs.get(name))})")
    return Plan(spec, config, case, vendor)


# ---- the run and the report -----------------------------------------------------------------

@dataclass
class Reproduction:
    plan: Plan
    spec: Spec            # the spec predicted with (the booted Xen's release, or --spec)
    spec_chosen: str      # "--spec" or "release X of the banner"
    xen: str
    info: dict
    prediction: object    # xenplan.Prediction
    model: tuple          # as_observed
    seen: tuple           # observed
    observation: object   # XenObservation
    releases: list        # (Release, outcome tuple) per release spec, for the write-up
    command: str

    @property
    def agree(self) -> bool:
        return self.model == self.seen


def run(xen: Path, settings: dict, spec_arg, load, divergences, command: str, runner=None) -> Reproduction:
    """Map, boot once, predict with the booted Xen's spec (or `spec_arg`), compare."""
    from ..xen.releases import RELEASES, spec_for
    from .xenplan import Predictor, as_observed, observed
    from .xenvalidate import emulator_divergences

    first = load(spec_arg) if spec_arg else load("xen")
    plan = plan_case(first, settings)  # bad input is refused before any boot
    if runner is None:
        from .xenrun import run_xen_cases as runner
    try:
        obs, info = runner(xen, plan.case.guest, [plan.case], vendor=plan.vendor)
    except (RuntimeError, ValueError, OSError) as exc:
        if "CONFIG_PV32 missing" in str(exc):
            raise InputError(f"--xen {xen}", "this Xen is built without CONFIG_PV32: it cannot start a PV32 "
                                             "guest (Debian's Xen 4.17 is; build one with CONFIG_PV32=y)") from None
        raise InputError(f"--xen {xen}", f"{type(exc).__name__}: {exc}") from None
    if spec_arg:
        spec, chosen = first, "--spec"
    else:
        name = spec_for(info["xen_version"])
        spec, chosen = load(name), f"the release spec of Xen {info['xen_version']}"
        plan = plan_case(spec, settings)
    divs = emulator_divergences(divergences, info, plan.vendor)
    predictor = Predictor(spec, plan.vendor, divs)
    prediction = predictor.predict(plan.case)
    releases = []
    seen_specs = {}
    for rel in RELEASES:
        if rel.spec not in seen_specs:
            try:
                p = Predictor(load(rel.spec), plan.vendor, divs).predict(plan.case)
                seen_specs[rel.spec] = as_observed(plan.case, p.guest)
            except InputError:
                seen_specs[rel.spec] = None
        releases.append((rel, seen_specs[rel.spec]))
    return Reproduction(plan, spec, chosen, str(xen), info, prediction, as_observed(plan.case, prediction.guest),
                        observed(obs[0]), obs[0], releases, command)


def _fields(t: tuple) -> dict:
    """An observed/predicted tuple as named fields for the side-by-side table."""
    from ..report.wording import exc
    from .xenplan import describe
    if t[0] == "exception":
        _, vector, ec, rip, masked = t
        return {"event": f"{exc(vector)} via TT[{vector:#04x}]", "error code": "none" if ec == -1 else f"{ec:#x}",
                "saved %rip": RIP_SHORT.get(rip, rip), "events": "masked" if masked else "unmasked"}
    if t[0] == "callback":
        return {"event": f"{t[1]} callback", "error code": "", "saved %rip": RIP_SHORT.get(t[2], t[2]),
                "events": "masked" if t[3] else "unmasked"}
    if t[0] == "call_gate":
        return {"event": "far CALL emulated by Xen", "error code": "", "saved %rip": "the gate's target",
                "events": ""}
    return {"event": describe(t), "error code": "", "saved %rip": "", "events": ""}


RIP_SHORT = {"insn": "the instruction", "opcode": "the opcode (past the prefix)", "plus2": "start + 2",
             "next": "the next instruction", "zero": "0", "other": "elsewhere"}
RIP_WORDS = {"insn": "the instruction's start", "opcode": "the opcode, past the prefix",
             "plus2": "the instruction's start + 2 (inside a prefixed instruction)",
             "next": "the next instruction", "zero": "0", "other": "elsewhere"}


def _versions(r: Reproduction) -> list[str]:
    i = r.info
    boot = ", ".join(f"{s:.1f} s" for s in i.get("boot_seconds", []))
    return [f"Xen:      {i.get('xen_banner') or '?'}", f"          ({r.xen})",
            f"emulator: {i.get('emulator_version', '?')}, TCG, -cpu {i.get('cpu', '?')}; "
            f"{i.get('boots', '?')} boot ({boot})",
            f"spec:     {r.spec.name} ({r.spec_chosen}): {r.spec.title}"]


def shown_case(r: Reproduction) -> str:
    """The case in words, with only the trap-table entries the model's path reads."""
    from .xenvalidate import case_text
    reads, config = set(r.prediction.evaluation.reads), r.plan.config
    tt = tuple((v, config.get(f"tt.{v:#04x}.present"), config.get(f"tt.{v:#04x}.dpl")) for v in range(256)
               if {f"tt.{v:#04x}.present", f"tt.{v:#04x}.dpl"} & reads)
    return case_text(replace(r.plan.case, tt=tt)).split(": ", 1)[1]


def text(r: Reproduction) -> str:
    from tabulate import tabulate
    from ..report.wording import guest_detail, insn_text, trace_lines, who_text
    config = r.plan.config
    m, x = _fields(r.model), _fields(r.seen)
    rows = [(k, m[k], x[k], "" if m[k] == x[k] else "<-- differs") for k in m if m[k] or x[k]]
    headers = ("", f"model ({r.spec.name})", f"Xen {r.info.get('xen_version', '?')}", "")
    if all(row[3] == "" for row in rows):  # no marker column when every field agrees
        rows, headers = [row[:3] for row in rows], headers[:3]
    lines = [f"reproduce: {insn_text(config)}", f"  {who_text(config, True)}",
             f"  guest case: {shown_case(r)}", *_versions(r), "", tabulate(rows, headers=headers)]
    detail = r.observation.detail
    if detail and r.observation.event in ("exception", "callback"):
        lines.append(f"(the guest's report: {detail}; at = saved %rip - the instruction's start)")
    elif detail and r.observation.event == "call_gate":
        lines.append(f"(the guest's report: {detail}; the return address and CS the CALL pushed)")
    elif detail:
        lines += _wrap(f"({'Xen' if r.observation.event == 'domain_crash' else 'the run'}: {detail})")
    lines += ["", f"model: {guest_detail(r.prediction.guest)}"]
    if r.prediction.divergence:
        lines.append(f"  (on the emulator's CPU: known divergence {r.prediction.divergence} applied)")
    lines += ["path:", *trace_lines(r.prediction.evaluation), "",
              "AGREE: Xen behaves as the model predicts" if r.agree
              else "DISAGREE: Xen does not behave as the model predicts"]
    return "\n".join(lines) + "\n"


def _wrap(text_: str, indent: str = "") -> list[str]:
    more = indent + "  " if text_.startswith("- ") else indent
    return textwrap.wrap(text_, 72, initial_indent=indent, subsequent_indent=more,
                         break_long_words=True, break_on_hyphens=False) or [indent.rstrip()]


def _release_lines(r: Reproduction) -> list[str]:
    from .xenplan import describe
    groups: dict = {}
    for rel, outcome in r.releases:
        groups.setdefault(outcome, []).append(rel)
    out = []
    for outcome, rels in groups.items():
        spans = ", ".join(_span(rel) for rel in rels)
        out += _wrap(f"{spans}: " + (describe(outcome) if outcome else "not modelled"), "  ")
    return out


def _span(rel) -> str:
    def v(t):
        return ".".join(str(p) for p in t)
    if rel.last[0] > 50:
        return f"{v(rel.first)} and later"
    if rel.last[2] >= 999:
        return f"{v(rel.first)}-{rel.last[0]}.{rel.last[1]}.x"
    return v(rel.first) if rel.first == rel.last else f"{v(rel.first)}-{v(rel.last)}"


def _changes(r: Reproduction) -> list[str]:
    """The Xen commits behind a difference between releases on this path."""
    outcomes = {o for _, o in r.releases}
    if len(outcomes) < 2:
        return []
    reads = set(r.prediction.evaluation.reads)
    return [why for name, why in CHANGES.items() if name in reads]


def email(r: Reproduction) -> str:
    from ..report.wording import insn_text, who_text
    from .xenplan import describe
    i, config = r.info, r.plan.config
    version = i.get("xen_version", "?")
    head = f"Xen {version}: {insn_text(config)} gives {describe(r.seen)}"
    out = _wrap(head) + _wrap(f"({who_text(config, True)})") + [""]
    out += ["Configuration:"] + _wrap(case_text_words(r), "  ") + [""]
    out += ["Observed (PV test guest as dom0, Xen booted under QEMU):"]
    out += _wrap(describe(r.seen) + f"; saved %rip at {RIP_WORDS.get(r.observation.rip, r.observation.rip)}"
                 if r.observation.rip in RIP_WORDS else describe(r.seen), "  ")
    out += _wrap(f"Xen: {i.get('xen_banner', '?')}", "  ")
    out += _wrap(f"Emulator: {i.get('emulator_version', '?')}, TCG, -cpu {i.get('cpu', '?')}", "  ")
    verdict = ("which is what pvsmt's model of this release predicts" if r.agree
               else f"where pvsmt's model of this release predicts: {describe(r.model)}")
    out += _wrap(f"{verdict} (spec {r.spec.name}).", "  ") + [""]
    out += ["Releases (pvsmt's release specs):"] + _release_lines(r) + [""]
    xen_steps = [s for s in r.prediction.evaluation.trace if s.rule.layer == "xen"]
    if xen_steps:
        out.append("Source lines (Xen's code, as the model follows it):")
        for s in xen_steps:
            out += _wrap(f"- {s.text}", "  ")
            out += _wrap(f"{s.rule.cite}", "    ")
        out.append("")
    changes = _changes(r)
    if changes:
        out.append("The commit that changed this between releases:")
        for c in changes:
            out += _wrap(f"- {c}", "  ")
        out.append("")
    out += ["To reproduce (pvsmt, with QEMU and gcc):"] + _wrap(r.command, "  ")
    return "\n".join(out) + "\n"


def case_text_words(r: Reproduction) -> str:
    vendor = "AMD-like" if r.plan.vendor == Vendor.AMD.label else "Intel-like"
    return shown_case(r) + f", {vendor} CPU"


__all__ = ["Plan", "Reproduction", "email", "from_report", "from_settings", "plan_case", "run", "text"]
