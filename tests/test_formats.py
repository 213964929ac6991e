"""Report formats: every format from one document, byte-identical runs, the JSON schema, JUnit
for CI, email for a review reply; `pvsmt table` and its --check; --version."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

from pvsmt.cli.main import main

ROOT = Path(__file__).resolve().parent.parent
FALSE = ROOT / "tests" / "fixtures" / "false"
SCHEMA = json.loads((ROOT / "pvsmt" / "schema" / "prove-report.schema.json").read_text())
FORMATS = ("text", "email", "markdown", "json", "junit")


def pvsmt(*argv, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pvsmt", *argv], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


SAMPLES = {"false": [FALSE / "int-n.inv", FALSE / "call-gates.inv"], "proofs": [ROOT / "proofs" / "syscall.inv"]}


@pytest.fixture(scope="module")
def reports():
    """Each format of two false fixture files (refuted, up to two counterexamples each) and of a
    proved file, rendered from one run's document."""
    from pvsmt.lang.discover import invariant_files, pairs
    from pvsmt.report.document import prove_document
    from pvsmt.report.formats import render
    from pvsmt.lang.parse import SpecLoader
    from pvsmt.cli.prove import check_all
    from pvsmt.analysis.expectation import run_code
    from pvsmt.analysis.prove import Limits
    out = {}
    limits = Limits(max_counterexamples=2)
    for name, files in SAMPLES.items():
        todo = pairs(invariant_files([str(f) for f in files]), None, SpecLoader())
        results = check_all(todo, limits, {})
        doc = prove_document(results, limits, run_code(results))
        for fmt in FORMATS:
            out[(name, fmt, 1)] = render(doc, fmt)
            out[(name, fmt, 2)] = render(doc, fmt)
    return out


@pytest.mark.parametrize("fmt", ["text", "json", "junit"])
def test_two_processes_give_identical_bytes(tmp_path, fmt):
    texts = []
    for run in (1, 2):
        target = tmp_path / f"{run}.{fmt}"
        p = pvsmt("prove", str(FALSE / "int-n.inv"), "--max", "2", "--format", fmt, "--output", str(target))
        assert p.returncode == 0 and "report written to" in p.stdout, p.stderr
        texts.append(target.read_bytes())
    assert texts[0] == texts[1]


def test_worker_processes_and_one_process_give_identical_bytes(reports, monkeypatch):
    """cli.workers runs the checks in forked processes where it can, else here, one run after the
    other: the same results either way, counterexamples and their explanations included."""
    from pvsmt.cli import workers
    from pvsmt.cli.prove import check_all
    from pvsmt.lang.discover import invariant_files, pairs
    from pvsmt.lang.parse import SpecLoader
    from pvsmt.report.document import prove_document
    from pvsmt.report.formats import render
    from pvsmt.analysis.expectation import run_code
    from pvsmt.analysis.prove import Limits
    monkeypatch.setattr(workers, "forking", lambda: False)
    limits = Limits(max_counterexamples=2)
    todo = pairs(invariant_files([str(f) for f in SAMPLES["false"]]), None, SpecLoader())
    results = check_all(todo, limits, {})
    doc = prove_document(results, limits, run_code(results))
    for fmt in FORMATS:
        assert render(doc, fmt) == reports[("false", fmt, 1)], fmt


def test_renderers_give_identical_bytes(reports):
    for (name, fmt, run), text in reports.items():
        if run == 1:
            assert text == reports[(name, fmt, 2)], (name, fmt)


def test_every_report_names_the_versions(reports):
    import z3
    from pvsmt import __version__
    for (name, fmt, run), text in reports.items():
        assert __version__ in text and z3.get_version_string() in text, (name, fmt)


def test_json_follows_the_schema(reports):
    for name in ("false", "proofs"):
        doc = json.loads(reports[(name, "json", 1)])
        jsonschema.validate(doc, SCHEMA)
        assert doc["schema"] == "pvsmt-prove/1"


def test_json_counterexamples_are_explained(reports):
    doc = json.loads(reports[("false", "json", 1)])
    assert doc["exit_code"] == 0 and doc["summary"]["refuted"] == doc["summary"]["checks"]  # refuted, as each expects
    assert all(c["expected"] == "refuted" and c["as_expected"] is True for c in doc["checks"])
    roles = set()
    for check in doc["checks"]:
        assert 1 <= len(check["counterexamples"]) <= 2
        for c in check["counterexamples"]:
            assert c["failing"]["text"] and c["path"] and c["knobs"]
            roles |= {k["role"] for k in c["knobs"]}
    assert {"any", "only", "determined"} <= roles


def test_json_proofs_name_their_facts(reports):
    doc = json.loads(reports[("proofs", "json", 1)])
    facts = [f["name"] for c in doc["checks"] for f in c["relies_on"]["facts"]]
    assert "xen.spec:45" in facts  # set efer.sce = 1


def test_email_fits_72_columns_and_carries_the_path(reports):
    text = reports[("false", "email", 1)]
    assert max(len(line) for line in text.splitlines()) <= 72
    assert "source: " in text and "Path:" in text and "fails: " in text
    assert "\t" not in text


def test_junit_has_one_testcase_per_invariant_and_spec(reports):
    from junitparser import JUnitXml
    root = ET.fromstring(reports[("false", "junit", 1)])
    cases = root.findall(".//testcase")
    doc = json.loads(reports[("false", "json", 1)])
    assert len(cases) == len(doc["checks"])
    # refuted, as each fixture expects: passing test cases, the counterexample in the case's output
    assert all(c.find("failure") is None and "counterexample 1 of" in c.find("system-out").text for c in cases)
    assert {c.get("classname") for c in cases} == {f"pvsmt.{c['spec']}" for c in doc["checks"]}
    proved = ET.fromstring(reports[("proofs", "junit", 1)])
    assert proved.get("failures") == "0" and proved.findall(".//failure") == []
    path = FALSE.parent / "_junit_tmp.xml"
    try:  # a JUnit reader takes it
        path.write_text(reports[("false", "junit", 1)])
        assert JUnitXml.fromfile(str(path)).failures == 0 and len(list(JUnitXml.fromfile(str(path)))) >= 1
    finally:
        path.unlink(missing_ok=True)


def test_markdown_has_a_table_and_a_section_per_refutation(reports):
    text = reports[("false", "markdown", 1)]
    doc = json.loads(reports[("false", "json", 1)])
    assert text.count("\n### `") == len(doc["checks"])
    assert "| invariant" in text and "|---" in text.replace(":", "-").replace("|-", "|-")


def test_text_has_no_times_unless_asked(capsys):
    main(["prove", str(ROOT / "proofs" / "syscall.inv")])
    out = capsys.readouterr().out
    assert " in " not in out.splitlines()[-1] and "time" not in out.splitlines()[2]
    main(["prove", str(ROOT / "proofs" / "syscall.inv"), "--timings"])
    out = capsys.readouterr().out
    assert out.splitlines()[-1].endswith("s")
    main(["prove", str(ROOT / "proofs" / "syscall.inv"), "--timings", "-v"])
    assert "time" in capsys.readouterr().out.splitlines()[2]


def test_unused_facts_are_listed(capsys):
    code = main(["prove", str(ROOT / "proofs"), "--unused-facts", "--format", "json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0
    unused = {f["statement"] for f in doc["unused_facts"]["xen"]}
    # No proof needs AMD's null SYSENTER_CS: AMD CPUs #UD SYSENTER in long mode first.
    assert "set sysenter_cs = null when vendor == amd" in unused
    used = {f["name"] for c in doc["checks"] if c["spec"] == "xen" for f in c["relies_on"]["facts"]}
    assert not used & {f["name"] for f in doc["unused_facts"]["xen"]}


def test_version_names_pvsmt_and_z3(capsys):
    import z3
    with pytest.raises(SystemExit):
        main(["--version"])
    out = capsys.readouterr().out
    assert out.startswith("pvsmt ") and z3.get_version_string() in out


@pytest.mark.parametrize("argv, message", [
    (["--max", "0"], "--max: error: expected a positive number"),
    (["--format", "yaml"], "invalid choice"),
    (["--output", "/nonexistent-dir/x.txt"], "no such directory: /nonexistent-dir"),
])
def test_bad_report_options_exit_2(argv, message):
    p = pvsmt("prove", "proofs/syscall.inv", *argv)
    assert p.returncode == 2 and message in p.stderr and "Traceback" not in p.stderr


# ---- pvsmt table ---------------------------------------------------------------------------

def test_table_round_trips_through_check(tmp_path):
    p = pvsmt("table", "--spec", "xen")
    assert p.returncode == 0 and p.stdout.startswith(".. Generated by `pvsmt table --spec xen`")
    rst = tmp_path / "t.rst"
    rst.write_text("Behaviour\n=========\n\n" + p.stdout)
    check = pvsmt("table", "--spec", "xen", "--check", str(rst))
    assert check.returncode == 0 and "agrees with spec xen" in check.stdout


def test_table_check_names_the_row_that_disagrees(tmp_path):
    lines = pvsmt("table", "--spec", "xen").stdout.splitlines()
    i = next(i for i, l in enumerate(lines) if l.startswith("SYSENTER") and "PV64" in l and "user" in l)
    lines[i] = lines[i].replace("sysenter callback", "syscall callback ", 1)
    rst = tmp_path / "t.rst"
    rst.write_text("\n".join(lines) + "\n")
    check = pvsmt("table", "--spec", "xen", "--check", str(rst))
    assert check.returncode == 1
    assert f"{rst}:{i + 1}: row SYSENTER | PV64 | user" in check.stdout
    assert "the model says 'sysenter callback'" in check.stdout


def test_table_differs_between_idt_and_fred():
    idt, fred = pvsmt("table", "--spec", "xen").stdout, pvsmt("table", "--spec", "xen-fred").stdout
    assert idt != fred
    row = next(l for l in fred.splitlines() if l.startswith("INT $0x20") and "PV64" in l and "user" in l)
    assert "SW_INT 0x20" in row


@pytest.mark.parametrize("text, message", [
    ("No table here.\n", "no table with the header"),
    ("=== ===\na   b\n=== ===\n1   2\n=== ===\n", "no table with the header"),
])
def test_table_check_without_the_table_exits_2(tmp_path, text, message):
    rst = tmp_path / "t.rst"
    rst.write_text(text)
    p = pvsmt("table", "--spec", "xen", "--check", str(rst))
    assert p.returncode == 2 and message in p.stderr and "Traceback" not in p.stderr


def test_table_of_a_spec_without_guests_exits_2():
    p = pvsmt("table", "--spec", "bare-x86")
    assert p.returncode == 2 and "has no PV guests" in p.stderr
