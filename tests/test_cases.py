"""Data-driven model cases (tests/cases/*.cases): both evaluators against the reference.

Each case is one configuration (a spec plus `--set` settings) and the outcome the
reference notes or the SDM give for it.  The runner resolves the configuration as
`pvsmt explain` does, checks the concrete evaluator's outcome and path, then checks
that the Z3 encoding forces the same outcome for the same configuration.  The file
format is described at the top of tests/cases/hardware.cases.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import pytest

from agree import Checker, overrides_for, spec
from pvsmt.backends.concrete import evaluate
from pvsmt.backends.configure import parse_setting, resolve
from pvsmt.model.outcome import UNSPECIFIED_BIT
from pvsmt.model.vocab import GUEST_FIELDS, HW_FIELDS, KNOBS

CASES_DIR = Path(__file__).resolve().parent / "cases"
KEYS = ("spec", "set", "hw", "guest", "unspecified", "rules")
HEADER = re.compile(r"^\[case ([a-z0-9][a-z0-9_\-]*)\]$")


@dataclass
class ModelCase:
    name: str
    where: str
    spec: str = ""
    settings: list[str] = field(default_factory=list)
    hw: dict[str, object] = field(default_factory=dict)
    guest: dict[str, object] = field(default_factory=dict)
    unspecified: list[str] | None = None  # guest fields the outcome leaves open (None: not checked)
    rules: list[str] = field(default_factory=list)


def _fields(text: str, domains: dict, where: str) -> dict[str, object]:
    out = {}
    for item in text.split():
        name, sep, value = item.partition("=")
        if not sep or name not in domains:
            raise ValueError(f"{where}: '{item}': expected FIELD=VALUE with FIELD one of {', '.join(domains)}")
        out[name] = domains[name].parse(value)
    return out


def _open_fields(text: str, where: str) -> list[str]:
    """`unspecified: FIELD ...` (guest fields), or `all`, or `none`."""
    names = text.split()
    if names == ["all"]:
        return list(GUEST_FIELDS)
    if names == ["none"]:
        return []
    for name in names:
        if name not in GUEST_FIELDS:
            raise ValueError(f"{where}: unspecified '{name}': expected guest fields ({', '.join(GUEST_FIELDS)}), "
                             f"'all' or 'none'")
    return names


def parse_cases(path: Path) -> list[ModelCase]:
    """Read one .cases file; a malformed file is an error, not a skipped case."""
    cases: list[ModelCase] = []
    raw: dict[str, str] = {}
    last = None

    def finish():
        if not cases:
            return
        c = cases[-1]
        for key in ("spec", "set"):
            if key not in raw:
                raise ValueError(f"{c.where}: case {c.name} has no '{key}:' line")
        if "hw" not in raw and "guest" not in raw and "unspecified" not in raw:
            raise ValueError(f"{c.where}: case {c.name} expects nothing (no 'hw:', 'guest:' or 'unspecified:' line)")
        c.spec = raw["spec"].strip()
        c.settings = raw["set"].split()
        c.hw = _fields(raw.get("hw", ""), HW_FIELDS, c.where)
        c.guest = _fields(raw.get("guest", ""), GUEST_FIELDS, c.where)
        c.rules = raw.get("rules", "").split()
        if "unspecified" in raw:
            c.unspecified = _open_fields(raw["unspecified"], c.where)
            both = set(c.unspecified) & set(c.guest)
            if both:
                raise ValueError(f"{c.where}: case {c.name} expects a value for unspecified {', '.join(sorted(both))}")

    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        text = line.split("#", 1)[0].rstrip()
        if not text.strip():
            continue
        where = f"{path.name}:{lineno}"
        m = HEADER.match(text)
        if m:
            finish()
            cases.append(ModelCase(m[1], where))
            raw, last = {}, None
            continue
        if not cases:
            raise ValueError(f"{where}: text before the first [case ...] header")
        if text[0].isspace():
            if last is None:
                raise ValueError(f"{where}: continuation line with nothing to continue")
            raw[last] += " " + text.strip()
            continue
        key, sep, value = text.partition(":")
        if not sep or key not in KEYS:
            raise ValueError(f"{where}: expected one of {', '.join(k + ':' for k in KEYS)}")
        if key in raw:
            raise ValueError(f"{where}: second '{key}:' line in case {cases[-1].name}")
        raw[key], last = value.strip(), key
    finish()
    return cases


def all_cases() -> list[ModelCase]:
    return [c for f in sorted(CASES_DIR.glob("*.cases")) for c in parse_cases(f)]


CASES = all_cases()


@lru_cache(maxsize=None)
def checker(spec_name: str, overrides: tuple) -> Checker:
    return Checker(spec(spec_name), dict(overrides))


def run(case: ModelCase):
    s = spec(case.spec)
    settings = dict(parse_setting(a) for a in case.settings)
    config = resolve(s, settings).config
    return s, settings, config, evaluate(config, guests=s.has_guests)


def label(value) -> str:
    return getattr(value, "label", None) or (hex(value) if isinstance(value, int) and value >= 16 else str(value))


def mismatches(expected: dict, record) -> list[str]:
    return [f"{name}: expected {label(want)}, got {label(getattr(record, name))}"
            for name, want in expected.items() if getattr(record, name) != want]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(case: ModelCase):
    s, settings, config, ev = run(case)
    path = [step.rule.name for step in ev.trace]
    context = f"{case.where} [case {case.name}]; path: {' > '.join(path)}"

    wrong = mismatches(case.hw, ev.hw)
    if case.guest or case.unspecified is not None:
        assert s.has_guests, f"{context}: spec {case.spec} has no guest layer but the case expects guest fields"
        wrong += ["guest." + w for w in mismatches(case.guest, ev.guest)]
        left_open = [n for n in GUEST_FIELDS if ev.guest.unspecified & UNSPECIFIED_BIT[n]]
        wrong += [f"guest.{n}: expected a value, but the outcome leaves it unspecified"
                  for n in case.guest if n in left_open]
        if case.unspecified is not None and set(case.unspecified) != set(left_open):
            wrong.append(f"unspecified: expected {' '.join(case.unspecified) or 'none'}, "
                         f"got {' '.join(left_open) or 'none'}")
    else:
        assert (ev.guest is None) == (not s.has_guests)
    for rule in case.rules:
        negate = rule.startswith("!")
        if (rule.lstrip("!") in path) == negate:
            wrong.append(f"rule {rule.lstrip('!')} {'is' if negate else 'is not'} on the path")
    assert not wrong, f"{context}\n  " + "\n  ".join(wrong)

    # The Z3 encoding, given the same knobs and the table entries the evaluator read,
    # must force the same outcome in every field.
    names = {k.name for k in KNOBS if s.has_guests or not k.guest_layer} | set(ev.reads)
    problem = checker(case.spec, tuple(sorted(overrides_for(settings).items()))).disagreement(config, ev, names)
    assert problem is None, f"{context}: Z3 disagrees: {problem}"


# ---- the corpus itself ---------------------------------------------------------------

def test_case_names_are_unique():
    seen: dict[str, str] = {}
    for c in CASES:
        assert c.name not in seen, f"{c.where}: case {c.name} is already defined at {seen[c.name]}"
        seen[c.name] = c.where


def test_corpus_is_large_and_covers_both_layers():
    assert len(CASES) >= 45
    assert {c.spec for c in CASES} >= {"bare-x86", "xen", "xen-pv-n"}
    assert sum(1 for c in CASES if c.guest) >= 45


def test_every_case_cites_its_source():
    for f in sorted(CASES_DIR.glob("*.cases")):
        for line in f.read_text().splitlines():
            if line.startswith("[case"):
                assert "#" in line and line.split("#", 1)[1].strip(), f"{f.name}: '{line}' cites no source"


REFERENCE_ROWS_IDT = {1, 3, 5, 6, 8, 9, 10, 12, 13, 14, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26,
                      31, 32, 33, 34, 36, 37, 38, 39, 40, 42, 43}


def test_every_idt_row_of_reference_section_6_has_a_case():
    cited = set()
    for f in sorted(CASES_DIR.glob("*.cases")):
        for line in f.read_text().splitlines():
            if line.startswith("[case"):
                for m in re.finditer(r"\brows? (\d+(?:-\d+)?)", line):
                    lo, _, hi = m[1].partition("-")
                    cited.update(range(int(lo), int(hi or lo) + 1))
    assert REFERENCE_ROWS_IDT - cited == set()


def test_malformed_case_file_is_an_error(tmp_path):
    bad = tmp_path / "bad.cases"
    bad.write_text("[case x]  # src\nspec: xen\nset: insn=int3\nhw: colour=red\n")
    with pytest.raises(ValueError, match=r"bad.cases:1: 'colour=red'"):
        parse_cases(bad)
    bad.write_text("[case x]  # src\nspec: xen\nset: insn=int3\n")
    with pytest.raises(ValueError, match="expects nothing"):
        parse_cases(bad)
    bad.write_text("[case x]  # src\nspec: xen\nwhen: insn=int3\n")
    with pytest.raises(ValueError, match="bad.cases:3: expected one of"):
        parse_cases(bad)


def test_a_wrong_expectation_fails(tmp_path):
    """The runner is not vacuous: a case with a wrong expected value fails."""
    f = tmp_path / "wrong.cases"
    f.write_text("[case wrong]  # deliberately wrong\nspec: xen\n"
                 "set: guest=pv64 guest_mode=user insn=int_n vector=0x80 tt.0x80.present=1\n"
                 "guest: event=exception vector=13\n")
    (case,) = parse_cases(f)
    with pytest.raises(AssertionError, match="vector: expected 13, got 0x80"):
        test_case(case)


def test_a_wrong_unspecified_expectation_fails(tmp_path):
    """`unspecified:` is checked both ways: a field left open, and a field the outcome states."""
    f = tmp_path / "open.cases"
    base = ("[case open]  # deliberately wrong\nspec: pv-traps-doc\n"
            "set: guest=pv64 guest_mode=user insn=int_n vector=0x80 tt.0x80.present=1 tt.0x80.dpl=3\n")
    f.write_text(base + "unspecified: vector masked_by\n")
    (case,) = parse_cases(f)
    with pytest.raises(AssertionError, match="unspecified: expected vector masked_by, got masked_by"):
        test_case(case)
    f.write_text(base.replace("dpl=3", "dpl=0") + "guest: event=exception\n")
    (case,) = parse_cases(f)
    with pytest.raises(AssertionError, match="guest.event: expected a value, but the outcome leaves it unspecified"):
        test_case(case)
    f.write_text(base + "guest: vector=0x80\nunspecified: vector\n")
    with pytest.raises(ValueError, match="expects a value for unspecified vector"):
        parse_cases(f)
