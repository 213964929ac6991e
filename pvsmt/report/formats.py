"""Renderers of a prove report (pvsmt.report.document.Report) for people and tools.

  text      for a terminal: a verdict table of the checks that are not proved, the proofs in one
            line per spec, each check that needs a look, then each UNCERTAIN note the proofs
            rely on, once, with the checks that share it (-v: every check, in full)
  email     plain text wrapped at 72 columns, nothing wider: to quote in a review reply; the
            refutations first, the proofs summarised as in text
  markdown  for a merge request: GitHub/GitLab tables and lists
  json      the document itself, Report.json() (docs/report-format.md)
  junit     JUnit XML, one test case per (invariant, spec): GitLab's test report panel

Each reads the document only; the same document gives the same bytes.
"""

from __future__ import annotations

import json
import textwrap

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # `pvsmt --help` imports this module: no model, no solver
    from .document import Check, Counterexample, FactRef, Report


def tabulate(*args, **kwargs) -> str:
    """tabulate.tabulate, imported when a report is rendered (`pvsmt --help` needs none)."""
    from tabulate import tabulate as table
    return table(*args, **kwargs)


FORMATS = ("text", "email", "markdown", "json", "junit")
WIDTH = 72

# ---- shared pieces ---------------------------------------------------------------------


def header(doc: Report) -> str:
    return (f"pvsmt {doc.pvsmt} (z3 {doc.z3}), rlimit {doc.limits.rlimit} per query, "
            f"seed {doc.limits.seed}")


def whatif(doc: Report) -> list[str]:
    """The header line of a what-if run: every --set, said to override the specs."""
    sets = doc.overrides or []
    if not sets:
        return []
    return ["what-if: " + " ".join(f"--set {s}" for s in sets) + " (overrides the specs' facts: these results "
            "are not those of the specs as written)"]


def summary(doc: Report) -> str:
    s = doc.summary
    parts = [f"{n} {label}" for label, n in s.items() if label != "checks"]
    met = sum(bool(c.as_expected) for c in doc.checks)
    parts += [f"{met} as expected"] if met else []
    tail = f" in {doc.seconds:.2f}s" if doc.seconds is not None else ""
    return f"{s['checks']} check{'' if s['checks'] == 1 else 's'}: {', '.join(parts) or 'none'}{tail}"


SEVERITY = {"error": 0, "refuted": 1, "unknown": 2, "unverified": 2, "vacuous": 3, "not-applicable": 4, "proved": 4}


def by_severity(checks: list[Check]) -> list[Check]:
    """Checks in the order to read them: errors, refutations, unknown, vacuous, then proofs
    (those relying on UNCERTAIN facts among them); file order within each."""
    return sorted(checks, key=lambda c: SEVERITY.get(c.verdict, 0))


def needs_a_look(check: Check) -> bool:
    return check.verdict != "proved" or check.relies_on.uncertain or unexpected(check)


def unexpected(check: Check) -> bool:
    """An invariant with `expect` whose expectation was not met (or could not be checked)."""
    return check.expected is not None and not check.as_expected


def verdict_text(check: Check) -> str:
    """The verdict, with the invariant's expectation: `refuted (expected)`, `proved (expected refuted)`."""
    if check.expected is None:
        return check.verdict
    if check.as_expected:
        return f"{check.verdict} (expected)"
    if check.verdict != check.expected:
        return f"{check.verdict} (expected {check.expected})"
    return f"{check.verdict} ({'witness unknown' if check.as_expected is None else 'outside the witness'})"


def has_block(check: Check, verbose: bool) -> bool:
    """A check with a block of its own below the table."""
    return verbose and needs_a_look(check) or check.verdict != "proved" or unexpected(check)


def shown_in_full(check: Check, verbose: bool) -> bool:
    """A check with its own row and block: every one with -v, else all but the proofs (which
    proved_lines summarises, and uncertain_groups lists where they rely on UNCERTAIN)."""
    return verbose or check.verdict != "proved" or unexpected(check)


def proved_lines(doc: Report) -> list[str]:
    """The proofs, one line per spec: `xen  62 proved, 5 relying on UNCERTAIN (below)`."""
    specs: dict[str, list[Check]] = {}
    for check in doc.checks:
        if check.verdict == "proved" and not unexpected(check):
            specs.setdefault(check.spec, []).append(check)
    width = max((len(s) for s in specs), default=0)
    out = []
    for spec, checks in specs.items():
        line = f"{spec:<{width}}  {len(checks)} proved"
        uncertain = sum(c.relies_on.uncertain for c in checks)
        undetermined = sum(bool(c.relies_on.facts_unknown) for c in checks)
        if uncertain:
            line += f", {uncertain} relying on UNCERTAIN (below)"
        if undetermined:
            line += f", {undetermined} whose facts could not be determined"
        out.append(line)
    return out


PROVED_HEAD = "proved, one line per spec (-v lists every check and the facts it relied on):"


def uncertain_groups(doc: Report) -> list[tuple[list[str], list[str]]]:
    """The proofs' UNCERTAIN notes, each once: (the note's lines, the checks relying on it as
    `FILE:LINE: INVARIANT [SPEC, SPEC]`), in the order of their first check."""
    groups: dict[tuple, tuple[list[str], dict[tuple, list[str]]]] = {}
    for check in doc.checks:
        if check.verdict != "proved":
            continue
        relies = check.relies_on
        notes = [(("rule", r.rule, r.uncertain, r.source),
                  [f"UNCERTAIN rule {r.rule}: {r.uncertain}", f"  source: {r.source}"])
                 for r in relies.uncertain_rules]
        notes += [(("fact", f.name, f.statement, f.uncertain, tuple(f.cites)),
                   [f"UNCERTAIN fact {f.name} `{f.statement}`: {f.uncertain}",
                    f"  source: {'; '.join(f.cites)}"]) for f in relies.uncertain_facts]
        for key, lines in notes:
            _, users = groups.setdefault(key, (lines, {}))
            users.setdefault((check.file, check.line, check.invariant), []).append(check.spec)
    return [(lines, [f"{f}:{line}: {inv} [{', '.join(specs)}]" for (f, line, inv), specs in users.items()])
            for lines, users in groups.values()]


def relied_on_by(users: list[str]) -> str:
    return "  relied on by the proofs of:"


def title(check: Check) -> str:
    sets = check.overrides or []
    what = " (what-if: " + " ".join(f"--set {s}" for s in sets) + ")" if sets else ""
    return f"{check.file}:{check.line}: {check.invariant} [{check.spec}{what}]: {verdict_text(check)}"


def facts_short(facts: list[FactRef]) -> str:
    """`xen.spec:14,28,30` for the facts a proof relied on."""
    files: dict[str, list[str]] = {}
    for f in facts:
        name, _, line = f.name.rpartition(":")
        files.setdefault(name, []).append(line)
    return "; ".join(f"{name}:{','.join(lines)}" for name, lines in files.items())


def note(check: Check) -> str:
    """The table's last column."""
    relies = check.relies_on
    if check.counterexamples:
        c = check.counterexamples[0]
        more = len(check.counterexamples) - 1
        return c.summary + (f" (+{more} more)" if more else "")
    if check.verdict == "proved":
        uncertain = [r.rule for r in relies.uncertain_rules] + [f.name for f in relies.uncertain_facts]
        if uncertain:
            return "relies on UNCERTAIN " + ", ".join(uncertain)
        if relies.facts_unknown:
            return "facts relied on: not determined"
        return "relies on " + (facts_short(relies.facts) or "no spec fact")
    return check.reason or ""


def knob_rows(c: Counterexample) -> list[tuple[str, str, str]]:
    rows = []
    for k in c.knobs:
        if k.role == "spec":
            continue
        value = k.value_text + (f" (default {k.default_text})" if k.changed else "")
        rows.append((k.label, value, k.violating_text))
    return rows


def failing_lines(c: Counterexample) -> list[str]:
    f = c.failing
    if f is None:
        return []
    what = "the property" if f.whole else "the smallest false part"
    lines = [f"fails: {f.text}  ({f.file}:{f.line}, {what})"]
    if f.values:
        lines.append("  here " + ", ".join(f"{k} = {v}" for k, v in f.values.items()))
    return lines


def relies_lines(check: Check, verbose: bool) -> list[str]:
    relies = check.relies_on
    out = []
    for r in relies.uncertain_rules:
        out += [f"proved, relies on UNCERTAIN rule {r.rule}: {r.uncertain}", f"  source: {r.source}"]
    for f in relies.uncertain_facts:
        out += [f"proved, relies on UNCERTAIN fact {f.name} `{f.statement}`: {f.uncertain}",
                f"  source: {'; '.join(f.cites)}"]
    if verbose or out:
        out += [f"relies on {f.name}: {f.statement}" for f in relies.facts]
    if relies.facts_unknown:
        out.append(f"the facts it relies on could not be determined: {relies.facts_unknown}")
    return out


def counterexample_lines(check: Check, i: int, c: Counterexample) -> list[str]:
    n = len(check.counterexamples)
    changed = ", ".join(c.changed) or "none"
    return [f"counterexample {i} of {n}, closest to the spec's defaults (changed: {changed}):",
            f"  {c.situation}", f"  executes {c.instruction}"]


# ---- text ---------------------------------------------------------------------------------


def render_text(doc: Report, verbose: bool = False) -> str:
    shown = [c for c in doc.checks if shown_in_full(c, verbose)]
    rows = [(c.invariant, c.spec, verdict_text(c)) + ((f"{c.seconds:.3f}s",) if c.seconds is not None else ())
            + (note(c),) for c in shown]
    heads = ("invariant", "spec", "verdict") + (("time",) if doc.checks and doc.checks[0].seconds is not None else ()) \
        + ("counterexample / note",)
    out = [header(doc), *whatif(doc)]
    if rows:
        out += ["", tabulate(rows, headers=heads)]
    proved = [] if verbose else proved_lines(doc)
    if proved:
        out += ["", PROVED_HEAD] + ["  " + line for line in proved]
    for check in by_severity(doc.checks):
        if has_block(check, verbose):
            out += [""] + check_text(check, verbose)
    if not verbose:
        for lines, users in uncertain_groups(doc):
            out += ["", *lines, relied_on_by(users)] + ["    " + u for u in users]
    out += _unused_text(doc)
    out += ["", summary(doc)]
    return "\n".join(out) + "\n"


def check_text(check: Check, verbose: bool) -> list[str]:
    out = [title(check)]
    if check.description and check.counterexamples:
        out.append(f"  invariant: {check.description}")
    if check.reason:
        out.append(f"  {check.reason}")
    out += ["  " + line for line in relies_lines(check, verbose)]
    for i, c in enumerate(check.counterexamples, 1):
        out += ["  " + line for line in counterexample_lines(check, i, c)]
        rows = knob_rows(c)
        table = tabulate(rows, headers=("name", "value", "still violates with"))
        out += ["    " + line for line in table.splitlines()]
        out += ["  " + line for line in failing_lines(c)]
        out += ["  outcome:", f"    hardware: {c.hardware_text}"]
        if c.guest_text:
            out.append(f"    guest:    {c.guest_text}")
        out += ["  path:"] + [line for step in _steps(c, verbose) for line in step]
        if c.facts:
            out.append("  spec facts on the path:")
            for f in c.facts:
                out.append(f"    {f.name}  {f.statement}")
                out += [f"      source: {cite}" for cite in f.cites[:1]]
        out += [f"  NOTE: this counterexample depends on an UNCERTAIN fact: {u}" for u in c.uncertain]
    return out


def _steps(c: Counterexample, verbose: bool) -> list[list[str]]:
    out = []
    for i, s in enumerate(c.path, 1):
        name = f" ({s.rule})" if verbose else ""
        step = [f"  {i:>3}. [{s.layer}]{'':<{4 - len(s.layer)}}{s.text}{name}",
                f"{'':>13}source: {s.source}"]
        if s.uncertain:
            step.append(f"{'':>13}UNCERTAIN: {s.uncertain}")
        out.append(step)
    return out


def _unused_text(doc: Report) -> list[str]:
    if doc.unused_facts is None:
        return []
    out = ["", "spec facts no verdict relied on (--unused-facts):"]
    for spec, facts in doc.unused_facts.items():
        out += [f"  {spec}: none"] if not facts else [f"  {f.name}  {f.statement}" for f in facts]
    return out


# ---- email ----------------------------------------------------------------------------------


def wrap(text: str, indent: str = "", hanging: str | None = None) -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=indent, subsequent_indent=hanging if hanging is not None
                         else indent + "  ", break_long_words=True, break_on_hyphens=False) or [indent]


def render_email(doc: Report, verbose: bool = False) -> str:
    out = wrap(header(doc)) + [w for line in whatif(doc) for w in wrap(line)] + wrap(summary(doc)) + [""]
    for check in by_severity(doc.checks):
        if shown_in_full(check, verbose):
            out += wrap(f"{verdict_text(check):<8} {check.invariant} [{check.spec}]", "", " " * 9)
    if not verbose:
        for line in proved_lines(doc):
            out += wrap(f"proved   {line}", "", " " * 9)
    for check in by_severity(doc.checks):
        if has_block(check, verbose):
            out += [""] + check_email(check, verbose)
    if not verbose:
        for lines, users in uncertain_groups(doc):
            out.append("")
            for line in [*lines, relied_on_by(users)]:
                out += wrap(line.strip(), _indent(line), _indent(line) + "  ")
            for u in users:
                out += wrap(u, "    ", "      ")
    unused = _unused_text(doc)
    out += [w for line in unused for w in wrap(line, _indent(line))]
    return "\n".join(out) + "\n"


def _indent(line: str) -> str:
    return line[:len(line) - len(line.lstrip())]


def check_email(check: Check, verbose: bool) -> list[str]:
    out = wrap(title(check))
    if check.description and check.counterexamples:
        out += wrap(f"Invariant: {check.description}", "", "  ")
    if check.reason:
        out += wrap(check.reason, "", "  ")
    for line in relies_lines(check, verbose):
        out += wrap(line, _indent(line), _indent(line) + "  ")
    for i, c in enumerate(check.counterexamples, 1):
        out.append("")
        for line in counterexample_lines(check, i, c):
            out += wrap(line, _indent(line), _indent(line) + "  ")
        for name, value, role in knob_rows(c):
            out += wrap(f"{name} = {value}: {role}", "  ", "      ")
        for line in failing_lines(c):
            out += wrap(line, _indent(line), _indent(line) + "  ")
        out += wrap(f"Hardware: {c.hardware_text}", "", "  ")
        if c.guest_text:
            out += wrap(f"Guest: {c.guest_text}", "", "  ")
        out.append("Path:")
        for j, s in enumerate(c.path, 1):
            out += wrap(f"{j}. [{s.layer}] {s.text}", "  ", "     ")
            out += wrap(f"source: {s.source}", "     ", "       ")
            if s.uncertain:
                out += wrap(f"UNCERTAIN: {s.uncertain}", "     ", "       ")
        if c.facts:
            out.append("Spec facts on the path:")
            for f in c.facts:
                out += wrap(f"{f.name}: {f.statement}", "  ", "    ")
                for cite in f.cites[:1]:
                    out += wrap(f"source: {cite}", "    ", "      ")
    return out


# ---- markdown ---------------------------------------------------------------------------------


def _md(text: str) -> str:
    """Text for a Markdown table cell: no pipes, no line breaks."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(doc: Report, verbose: bool = False) -> str:
    out = [f"## pvsmt prove: {summary(doc)}", "", f"_{header(doc)}_", ""]
    out += [f"**{line}**" for line in whatif(doc)] + ([""] if whatif(doc) else [])
    rows = [(f"`{c.invariant}`", c.spec, f"**{verdict_text(c)}**" if c.verdict != "proved" or unexpected(c)
             else verdict_text(c),
             _md(note(c))) for c in doc.checks if shown_in_full(c, verbose)]
    if rows:
        out += [tabulate(rows, headers=("invariant", "spec", "verdict", "counterexample / note"), tablefmt="github"), ""]
    proved = [] if verbose else proved_lines(doc)
    if proved:
        out += [f"**{PROVED_HEAD[0].upper()}{PROVED_HEAD[1:-1]}**", ""]
        out += [f"- `{spec}`{_md(rest)}" for spec, _, rest in (line.partition(" ") for line in proved)] + [""]
    for check in by_severity(doc.checks):
        if has_block(check, verbose):
            out += check_markdown(check, verbose)
    if not verbose:
        for lines, users in uncertain_groups(doc):
            head, _, rest = lines[0].partition(": ")
            out += [f"### {head}", "", _md(rest), "", f"_{lines[1].strip()}_", "", relied_on_by(users).strip(), ""]
            out += [f"- {_md(u)}" for u in users] + [""]
    if doc.unused_facts is not None:
        out += ["### Spec facts no verdict relied on", ""]
        out += [f"- `{f.name}` `{f.statement}`" for facts in doc.unused_facts.values() for f in facts]
        out.append("")
    return "\n".join(out)


def check_markdown(check: Check, verbose: bool) -> list[str]:
    sets = " ".join(f"`--set {s}`" for s in check.overrides or [])
    out = [f"### `{check.invariant}` [{check.spec}{' what-if ' + sets if sets else ''}]: {verdict_text(check)}", "",
           f"{check.file}:{check.line}", ""]
    if check.description:
        out += [f"> {check.description}", ""]
    if check.reason:
        out += [check.reason, ""]
    out += [f"- {line}" for line in relies_lines(check, verbose) if not line.startswith("  ")]
    for i, c in enumerate(check.counterexamples, 1):
        out += ["", f"**{counterexample_lines(check, i, c)[0]}** {c.situation}; executes {c.instruction}", ""]
        rows = [(f"`{n}`", _md(v), _md(r)) for n, v, r in knob_rows(c)]
        out += [tabulate(rows, headers=("name", "value", "still violates with"), tablefmt="github"), ""]
        out += [f"- {_md(line.strip())}" for line in failing_lines(c)]
        out += [f"- hardware: {_md(c.hardware_text)}"]
        if c.guest_text:
            out.append(f"- guest: {_md(c.guest_text)}")
        out += ["", "Path:", ""]
        out += [f"{j}. [{s.layer}] {s.text}  \n   _source: {s.source}_" for j, s in enumerate(c.path, 1)]
        if c.facts:
            out += ["", "Spec facts on the path:", ""] + [f"- `{f.name}` `{f.statement}`" for f in c.facts]
        out.append("")
    return out


# ---- junit ---------------------------------------------------------------------------------------


def render_junit(doc: Report, verbose: bool = False, extra: tuple = ()) -> str:
    """One <testcase> per (invariant, spec), one <testsuite> per spec, via junitparser.  `extra` adds
    (suite, case, classname, failure message or None, text) test cases (check-xen's diff)."""
    from junitparser import Error, Failure, JUnitXml, Properties, Property, Skipped, TestCase, TestSuite
    xml = JUnitXml("pvsmt prove")
    suites: dict[str, TestSuite] = {}
    for check in doc.checks:
        if check.spec not in suites:
            suite = TestSuite(f"pvsmt prove [{check.spec}]")
            props = Properties()
            for key in ("pvsmt", "z3", "schema"):
                props.add_property(Property(key, str(getattr(doc, key))))
            if doc.overrides:
                props.add_property(Property("what-if", " ".join(f"--set {s}" for s in doc.overrides)))
            suite.append(props)
            suites[check.spec] = suite
        case = TestCase(check.invariant, f"pvsmt.{check.spec}")
        details = "\n".join(check_email(check, verbose))
        if check.as_expected:  # a documented refutation, still there: a pass
            case.system_out = details
        elif check.verdict in ("refuted", "vacuous") or unexpected(check):
            case.result = [Failure(f"{verdict_text(check)}: {note(check)}", check.verdict)]
            case.result[0].text = details
        elif check.verdict in ("unknown", "error", "unverified"):  # unverified: check-xen
            case.result = [Error(f"{check.verdict}: {note(check)}", check.verdict)]
            case.result[0].text = details
        elif check.verdict == "not-applicable":  # check-xen: the configuration excludes it
            case.result = [Skipped(note(check))]
        else:
            case.system_out = details
        suites[check.spec].add_testcase(case)
    for suite_name, name, classname, failure, text in extra:
        if suite_name not in suites:
            suites[suite_name] = TestSuite(suite_name)
        case = TestCase(name, classname)
        if failure is not None:
            case.result = [Failure(failure, "difference")]
            case.result[0].text = text
        else:
            case.system_out = text
        suites[suite_name].add_testcase(case)
    for suite in suites.values():
        suite.update_statistics()
        xml.add_testsuite(suite)
    xml.update_statistics()
    text = xml.tostring()
    return (text.decode() if isinstance(text, bytes) else text) + "\n"


def render_json(doc: Report, verbose: bool = False) -> str:
    return json.dumps(doc.json(), indent=2) + "\n"


RENDER = {"text": render_text, "email": render_email, "markdown": render_markdown, "json": render_json,
          "junit": render_junit}


def render(doc: Report, fmt: str, verbose: bool = False) -> str:
    return RENDER[fmt](doc, verbose)
