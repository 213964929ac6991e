"""Formatting: verdict tables, counterexamples and explanations in the SDM's and Xen's words.

Pure functions from results to text or JSON-ready data; nothing here runs Z3.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from ..backends.concrete import Config, Evaluation
from ..lang.spec import is_system
from ..model.instructions import BY_INSN
from ..model.outcome import GuestOutcome, HwOutcome, open_fields
from ..model.vocab import (GUEST_FIELDS, HW_FIELDS, KNOB, NONE, TABLE, CodeMode, GuestEvent, HwEvent, Insn,
                    Kind, Label, MaskFlag, Msr, Prefix, Rip, Source, Vendor, domain_of)

MNEMONIC = {0: "#DE", 1: "#DB", 2: "NMI", 3: "#BP", 4: "#OF", 5: "#BR", 6: "#UD", 7: "#NM", 8: "#DF",
            10: "#TS", 11: "#NP", 12: "#SS", 13: "#GP", 14: "#PF", 16: "#MF", 17: "#AC", 18: "#MC",
            19: "#XM", 20: "#VE", 21: "#CP"}

#: Each instruction as reports name it, from its row (INT $N and the far CALL add their operands).
OPCODE = {insn: row.text for insn, row in BY_INSN.items()}


def exc(vector: int, error_code: int = NONE) -> str:
    name = MNEMONIC.get(vector, f"vector {vector:#04x}")
    return name if error_code == NONE else f"{name}({error_code:#x})"


def hw_text(hw: HwOutcome) -> str:
    if hw.event == HwEvent.FRED:
        what = f"INT {hw.vector:#04x}" if hw.source == Source.SW_INT else exc(hw.vector, hw.error_code)
        return f"FRED {hw.source.label.upper()} event: {what}"
    if hw.event == HwEvent.SYSCALL and hw.msr == Msr.NONE:
        return "FRED OTHER event 1 (SYSCALL)"
    if hw.event == HwEvent.IDT:
        if hw.source == Source.SW_INT:
            return f"INT {hw.vector:#04x} via IDT[{hw.vector:#04x}]"
        return f"{exc(hw.vector, hw.error_code)} {hw.kind.label} via IDT[{hw.vector:#04x}]"
    return {HwEvent.NONE: "no event", HwEvent.SYSCALL: f"SYSCALL via {hw.msr.label.upper()}",
            HwEvent.SYSENTER: "SYSENTER entry (SYSENTER_EIP, or a FRED OTHER event 2)", HwEvent.CALL_GATE: "transfer through the call gate",
            HwEvent.SHUTDOWN: "shutdown (triple fault)"}[hw.event]


def guest_text(g: GuestOutcome | None) -> str:
    if g is None:
        return "(no guest layer)"
    if g.event == GuestEvent.EXCEPTION:
        what = f"SW_INT {g.vector:#04x}" if g.type == Source.SW_INT else exc(g.vector, g.error_code)
        return f"{what} {g.kind.label} via TT[{g.vector:#04x}]"
    if g.event == GuestEvent.CALLBACK:
        return f"{g.callback.label} callback"
    return g.event.label.replace("_", " ")


RIP = {Rip.INSN: "%rip at the instruction", Rip.OPCODE: "%rip at the opcode, past the prefixes (rewound by 2)",
       Rip.NEXT: "%rip after the instruction", Rip.ZERO: "frame rip=0", Rip.TARGET: "%rip at the gate's target",
       Rip.PLUS2: "%rip at the instruction's start + 2 (inside it when prefixed)"}
MASK = {MaskFlag.TT_IF: "masked per the TT entry's IF flag", MaskFlag.SYSCALL: "masked per the syscall flag",
        MaskFlag.SYSCALL32: "masked per the syscall32 flag", MaskFlag.SYSENTER: "masked per the sysenter flag"}


def _unsaid_fault(g: GuestOutcome, unsaid: list[str]) -> str:
    what = "a fault" if g.kind == Kind.FAULT and "kind" not in unsaid else "an exception"
    return f"{what} (which one is not stated)" if g.event == GuestEvent.EXCEPTION else g.event.label


def guest_what(g: GuestOutcome) -> str | None:
    """What the guest gets, saying which parts a silent document leaves open; None if it says nothing."""
    unsaid = open_fields(g)
    if "event" in unsaid:
        return None
    return guest_text(g) if not {"vector", "error_code"} & set(unsaid) else _unsaid_fault(g, unsaid)


def guest_detail(g: GuestOutcome | None) -> str:
    """guest_what plus where %rip points, what masks events, and what is left unspecified."""
    if g is None:
        return guest_text(g)
    what = guest_what(g)
    if what is None:
        return "unspecified (the document does not say)"
    unsaid = open_fields(g)
    parts = [what]
    if "rip" not in unsaid and g.rip in RIP:
        parts.append(RIP[g.rip])
    if "masked_by" not in unsaid and g.masked_by in MASK:
        parts.append(MASK[g.masked_by])
    text = ", ".join(parts)
    return text + (f" (unspecified: {', '.join(unsaid)})" if unsaid else "")


def insn_text(config: Config) -> str:
    insn = config.get("insn")
    if insn == Insn.INT_N:
        v = config.get("vector")
        prefix = config.get("prefix")
        extra = "" if prefix.label == "none" else f", {prefix.label} prefix"
        return f"INT ${v:#04x} (CD {v:02x}{extra})"
    if insn == Insn.CALLGATE:
        table, index, rpl = config.get("gate.table"), config.get("gate.index"), config.get("gate.rpl")
        sel = index * 8 + (4 if table.label == "ldt" else 0) + rpl
        return f"far CALL via {table.label.upper()} selector {sel:#06x}"
    text = OPCODE[insn]
    if insn == Insn.SYSCALL and config.get("prefix").label != "none":
        text += f", {config.get('prefix').label} prefix"
    if insn == Insn.INTO:
        text += f", OF={int(config.get('of'))}"
    if insn == Insn.BOUND:
        text += ", index " + ("in range" if config.get("bound.in_range") else "out of range")
    return text


def who_text(config: Config, guests: bool) -> str:
    mode = "64-bit code" if config.get("mode") == CodeMode.LONG64 else "compatibility mode"
    vendor = "Intel-like" if config.get("vendor") == Vendor.INTEL else "AMD-like"
    if not guests:
        return f"{vendor} CPU, {mode}, CPL{config.get('cpl')}"
    return (f"{vendor} CPU, {config.get('guest').label.upper()} guest in {config.get('guest_mode').label} mode, "
            f"{mode}, CPL{config.get('cpl')}")


def one_line(config: Config, ev: Evaluation, guests: bool) -> str:
    """The table's counterexample summary."""
    who = who_text(config, guests).replace(" CPU,", ",").replace(" guest in", "").replace(" mode,", ",")
    end = f"{hw_text(ev.hw)} -> {guest_text(ev.guest)}" if guests else hw_text(ev.hw)
    return f"{insn_text(config)} [{who}]: {end}"


# ---- configurations ----------------------------------------------------------------

def value_text(name: str, value) -> str:
    return domain_of(name).format(value)


def config_lines(config: Config, names, source: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """`names` (knobs and table entries) as (label, text) rows, tables grouped per vector."""
    rows, tables = [], {}
    for name in names:
        head, *rest = name.split(".")
        mark = " (default)" if source and source.get(name) == "default" else ""
        if source and source.get(name) == "set" and is_system(name):
            mark = " (--set: overrides the spec)"
        if head in TABLE and len(rest) == 2:
            tables.setdefault((head, rest[0]), []).append(f"{rest[1]}={value_text(name, config.get(name))}{mark}")
        else:
            rows.append((name, value_text(name, config.get(name)) + mark))
    for (head, vector), parts in tables.items():
        label = f"IDT[{vector}]" if head == "idt" else f"TT[{vector}]"
        rows.append((label, ", ".join(parts)))
    return rows


def relevant(ev: Evaluation, also=()) -> list[str]:
    """Names read on the path, then any others the invariant reads, in a stable order."""
    names = list(dict.fromkeys([*ev.reads, *also]))
    order = {k: i for i, k in enumerate(KNOB)}
    return sorted(names, key=lambda n: (order.get(n, len(order)), n))


def trace_lines(ev: Evaluation, verbose: bool = False) -> list[str]:
    out = []
    for i, step in enumerate(ev.trace, 1):
        tag = f"[{step.rule.layer}]"
        name = f" ({step.rule.name})" if verbose else ""
        out.append(f"{i:>3}. {tag:<5} {step.text}{name}")
        out.append(f"{'':>11}source: {step.rule.cite}")
        if step.rule.uncertain:
            out.append(f"{'':>11}UNCERTAIN: {step.rule.uncertain}")
    return out


def counterexample_text(cex, verbose: bool = False) -> list[str]:
    ev: Evaluation = cex.evaluation
    guests = ev.guest is not None
    names = relevant(ev, cex.inv_reads)
    if verbose:  # every knob too, not only those that mattered here
        names = relevant(ev, cex.inv_reads + tuple(k for k in KNOB if k in cex.config.values))
    lines = ["  configuration:", f"    {who_text(cex.config, guests)}", f"    executes {insn_text(cex.config)}"]
    width = max((len(label) for label, _ in config_lines(cex.config, names)), default=0)
    lines += [f"    {label:<{width}}  {text}" for label, text in config_lines(cex.config, names)]
    lines += ["  outcome:", f"    hardware: {hw_text(ev.hw)}"]
    if guests:
        lines.append(f"    guest:    {guest_text(ev.guest)}")
    lines += ["  path:"] + ["  " + line for line in trace_lines(ev, verbose)]
    for rule in cex.uncertain:
        lines.append(f"  NOTE: this counterexample depends on an UNCERTAIN fact: {rule.uncertain}")
    return lines


# ---- prove -------------------------------------------------------------------------------

def results_table(results) -> str:
    from tabulate import tabulate   # imported when used: with importlib.metadata it costs ~50 ms at startup
    rows = []
    for r in results:
        summary = r.reason
        if r.counterexample is not None:
            summary = one_line(r.counterexample.config, r.counterexample.evaluation, r.spec.has_guests)
        elif r.relies_on:
            summary = "relies on UNCERTAIN: " + "; ".join(x.name for x in r.relies_on)
        rows.append((r.invariant.name, r.spec.name, r.verdict.label, f"{r.seconds:.3f}s", summary))
    return tabulate(rows, headers=("invariant", "spec", "verdict", "time", "counterexample / note"))


def details(results, verbose: bool = False) -> list[str]:
    out = []
    for r in results:
        head = f"{r.invariant.where}: {r.invariant.name} [{r.spec.name}]: {r.verdict.label}"
        if r.counterexample is not None:
            out += ["", head]
            if r.invariant.description:
                out.append(f"  invariant: {r.invariant.description}")
            out += counterexample_text(r.counterexample, verbose=verbose)
        elif r.reason:
            out += ["", f"{head}: {r.reason}"]
        elif r.relies_on:
            out += ["", f"{head}, relying on UNCERTAIN facts:"]
            out += [f"  - {x.name}: {x.uncertain} ({x.cite})" for x in r.relies_on]
    return out


def summary(results, seconds: float) -> str:
    counts = {}
    for r in results:
        counts[r.verdict.label] = counts.get(r.verdict.label, 0) + 1
    parts = [f"{n} {label}" for label, n in counts.items()]
    return f"{len(results)} checks: {', '.join(parts) or 'none'} in {seconds:.2f}s"


# ---- explain -------------------------------------------------------------------------------

#: Enumerations whose `none` is a value of its own, as the README and the invariant language
#: spell it (no control transfer, nothing happens, no prefix, no guest frame, no masking): JSON
#: prints the word.  Elsewhere `none` means the field does not apply, and JSON prints null.
NONE_IS_A_VALUE = (HwEvent, GuestEvent, Prefix, Rip, MaskFlag)


def json_value(domain, value):
    if isinstance(value, Label):
        return None if value.name == "NONE" and not isinstance(value, NONE_IS_A_VALUE) else value.label
    if isinstance(value, bool):
        return int(value)
    return None if domain.optional and value == NONE else value


def outcome_json(record, fields) -> dict:
    return {name: json_value(domain, getattr(record, name)) for name, domain in fields.items()}


def hardware_json(hw: HwOutcome) -> dict:
    out = outcome_json(hw, HW_FIELDS)
    if hw.event != HwEvent.IDT:
        out["gate_type"] = None  # no gate was used
    return out


def runs(values) -> list[tuple[int, int]]:
    """Integers as runs of consecutive values: {1, 2, 3, 7} -> [(1, 3), (7, 7)]."""
    out: list[list[int]] = []
    for v in sorted(values):
        if out and v == out[-1][1] + 1:
            out[-1][1] = v
        else:
            out.append([v, v])
    return [(lo, hi) for lo, hi in out]


def versions() -> dict:
    """pvsmt's and Z3's versions: every report names them (another Z3 may pick another model)."""
    from .. import __version__
    try:
        import z3
        z3_version = z3.get_version_string()
    except ImportError:  # pragma: no cover
        z3_version = None
    return {"pvsmt": __version__, "z3": z3_version}


def version_line() -> str:
    v = versions()
    return f"pvsmt {v['pvsmt']} (z3 {v['z3']})"


def trace_json(ev: Evaluation) -> list[dict]:
    return [{"layer": s.rule.layer, "rule": s.rule.name, "text": s.text, "source": s.rule.cite,
             "uncertain": s.rule.uncertain or None} for s in ev.trace]


def shown_path(path) -> str:
    """A path relative to the working directory when it lies below it (stable across checkouts)."""
    return _shown_path(str(path), os.getcwd())


@functools.lru_cache(maxsize=1024)
def _shown_path(path: str, cwd: str) -> str:
    """Remembered per path and working directory: a report shows the spec's path for every fact
    of every check (thousands of times), and resolving it costs a system call per component."""
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path(cwd).resolve()))
    except ValueError:
        return str(p)


def explain_json(spec, resolved, ev: Evaluation) -> dict:
    names = relevant(ev, [n for n, s in resolved.source.items() if s == "set"])
    guest = None
    if ev.guest is not None:
        guest = outcome_json(ev.guest, GUEST_FIELDS)
        if ev.guest.kind == Kind.NONE:
            guest["kind"] = None
        guest["unspecified"] = open_fields(ev.guest)
    return {
        **versions(),
        "spec": spec.name,
        "overrides": overrides_text(resolved),
        "config": {n: json_value(domain_of(n), resolved.config.get(n)) for n in names},
        "defaulted": [n for n in names if resolved.source.get(n) == "default"],
        "hardware": hardware_json(ev.hw),
        "guest": guest,
        "trace": trace_json(ev),
        "uncertain": [s.rule.uncertain for s in ev.trace if s.rule.uncertain],
    }


def overrides_text(resolved) -> list[str]:
    """The --set settings that override spec facts (a what-if): `idt.0x21.dpl=3`."""
    return [f"{n}={value_text(n, resolved.config.get(n))}" for n, s in resolved.source.items()
            if s == "set" and is_system(n)]


def explain_text(spec, resolved, ev: Evaluation, verbose: bool = False) -> str:
    source = resolved.source
    names = relevant(ev, [n for n, s in source.items() if s == "set"])
    rows = config_lines(resolved.config, names, source)
    width = max((len(label) for label, _ in rows), default=0)
    guests = ev.guest is not None
    lines = [f"spec: {spec.name} ({shown_path(spec.path)}): {spec.title}; {version_line()}", "configuration:",
             f"  {who_text(resolved.config, guests)}", f"  executes {insn_text(resolved.config)}"]
    lines += [f"  {label:<{width}}  {text}" for label, text in rows]
    sets = overrides_text(resolved)
    if sets:
        lines.insert(1, "what-if: " + " ".join(f"--set {s}" for s in sets) + f" (overrides spec {spec.name}'s facts)")
    lines += ["outcome:", f"  hardware: {hw_text(ev.hw)}"]
    if guests:
        lines.append(f"  guest:    {guest_detail(ev.guest)}")
    lines += ["path:"] + trace_lines(ev, verbose)
    defaulted = [n for n in names if source.get(n) == "default"]
    others = len(resolved.defaulted()) - len(defaulted)
    if defaulted:
        lines.append(f"defaulted (the spec's defaults; change with --set): {', '.join(defaulted)}")
    if others:
        lines.append(f"({others} other names not read on this path also took the spec's defaults)")
    return "\n".join(lines)
