"""pvsmt as a newcomer uses it (issue 15): any directory, any name, honest what-ifs,
documented JSON words, interrupts and output paths, readable reports.

Each test would have caught one of the issue's items; the non-editable install is
tests/test_install.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pvsmt.cli.main import main

ROOT = Path(__file__).resolve().parent.parent


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# ---- item 3: a shipped NAME or a PATH everywhere ------------------------------------------

def test_spec_names_work_from_any_directory(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "explain", "--spec", "xen", "--set", "insn=int3")
    assert code == 0 and out.startswith("spec: xen ("), err
    inv = tmp_path / "mine.inv"
    inv.write_text('invariant mine {\n  specs xen\n  cite "t"\n  assume insn == int3\n'
                   '  prove hw.event != syscall\n}\n')
    code, out, err = run(capsys, "prove", "--spec", "bare-x86", str(inv))
    assert code == 0 and "bare-x86" in out, err
    code, out, err = run(capsys, "prove", str(inv))  # `specs xen`: no specs/ here, the shipped one
    assert code == 0 and "xen" in out, err


def test_a_proposal_in_ones_own_directory_extends_a_shipped_spec(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "proposal.spec").write_text('spec my-proposal\nextends xen\nidt 0x21 dpl=3\n  cite "mine"\n')
    code, out, err = run(capsys, "explain", "--spec", "proposal.spec", "--set", "insn=int_n", "--set", "vector=0x21")
    assert code == 0 and "spec: my-proposal" in out, err


def test_an_unknown_spec_name_lists_the_shipped_ones(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "explain", "--spec", "xne")
    assert code == 2 and "no spec 'xne'" in err and "xen-fred" in err


# ---- item 4: JSON prints the documented words ----------------------------------------------

def test_explain_json_says_none_where_none_is_a_value(capsys):
    code, out, _ = run(capsys, "explain", "--spec", "bare-x86", "--set", "insn=into", "--set", "of=0",
                       "--set", "mode=compat", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["hardware"]["event"] == "none"
    assert doc["hardware"]["error_code"] is None and doc["hardware"]["kind"] is None  # does not apply
    code, out, _ = run(capsys, "explain", "--spec", "xen", "--set", "insn=int_n", "--set", "vector=0x21",
                       "--set", "prefix=none", "--json")
    doc = json.loads(out)
    assert doc["config"]["prefix"] == "none" and doc["guest"]["callback"] is None
    code, out, _ = run(capsys, "explain", "--spec", "xen", "--set", "insn=int3", "--set", "tt.3.present=0", "--json")
    doc = json.loads(out)
    assert doc["guest"]["event"] == "domain_crash" and doc["guest"]["rip"] == "none"
    assert doc["guest"]["masked_by"] == "none"


# ---- item 5: -o is checked before the work -------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["prove", str(ROOT / "proofs" / "hardware.inv")],
    ["table", "--spec", "xen"],
    ["extract", str(ROOT / "tests" / "fixtures" / "xen-trees" / "new-layout")],
    ["check-xen", str(ROOT / "tests" / "fixtures" / "xen-trees" / "new-layout")],
])
def test_a_missing_output_directory_is_an_error_before_any_work(tmp_path, capsys, monkeypatch, argv):
    import pvsmt.cli.prove as pr

    def no_work(*a, **k):  # pragma: no cover - reaching it is the failure
        raise AssertionError("solved before checking -o")
    monkeypatch.setattr(pr, "check_all", no_work)
    out = tmp_path / "missing" / "out"
    code, _, err = run(capsys, *argv, "-o", str(out))
    assert code == 2 and f"--output {out}: error: no such directory" in err


# ---- item 5: Ctrl-C cancels the work: one line, exit 130 ----------------------------------

@pytest.mark.e2e
@pytest.mark.parametrize("argv", [
    ["prove", "proofs", "tests/fixtures/false", "--max", "5"],  # two worker processes
    ["diff", "pv-traps-doc", "xen"],                             # Z3 in the main process
])
def test_ctrl_c_stops_at_once_with_one_line(argv):
    """As from a terminal: SIGINT to the whole process group; nothing of it is left running."""
    p = subprocess.Popen([sys.executable, "-m", "pvsmt", *argv], cwd=ROOT, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True, start_new_session=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(2.5)  # well inside the solving
    assert p.poll() is None, "finished before it could be interrupted"
    start = time.monotonic()
    os.killpg(p.pid, signal.SIGINT)
    _, err = p.communicate(timeout=30)
    assert time.monotonic() - start < 3
    assert p.returncode == 130 and err == "pvsmt: interrupted\n", err
    with pytest.raises(ProcessLookupError):  # no worker left behind in its group
        os.killpg(p.pid, 0)


# ---- item 2: a what-if says so, in every format ---------------------------------------------

WHAT_IF = ["--set", "idt.3.dpl=0", "--set", "idt.4.dpl=0"]


@pytest.fixture(scope="module")
def what_if_reports(tmp_path_factory):
    out = {}
    tmp = tmp_path_factory.mktemp("whatif")
    for fmt in ("text", "email", "markdown", "json", "junit"):
        path = tmp / f"report.{fmt}"
        code = main(["prove", str(ROOT / "proofs" / "pv-n.inv"), *WHAT_IF, "--format", fmt, "-o", str(path)])
        out[fmt] = (code, path.read_text())
    return out


@pytest.mark.parametrize("fmt", ["text", "email", "markdown", "json", "junit"])
def test_every_format_states_the_overrides(what_if_reports, fmt):
    code, text = what_if_reports[fmt]
    assert code == 1  # vectors 3 and 4 at DPL0 under CONFIG_PV=y: refuted
    assert "--set idt.0x03.dpl=0" in text.replace("\n", " ") or "idt.0x03.dpl=0" in text
    assert "what-if" in text
    assert "idt 0x04 dpl=3" not in text and "idt 0x03 dpl=3" not in text  # the overridden spec facts


def test_json_lists_each_override_as_a_fact_on_the_path(what_if_reports):
    doc = json.loads(what_if_reports["json"][1])
    assert doc["overrides"] == ["idt.0x03.dpl=0", "idt.0x04.dpl=0"]
    refuted = [c for c in doc["checks"] if c["verdict"] == "refuted"]
    assert refuted and all(c["overrides"] == doc["overrides"] for c in doc["checks"])
    for check in refuted:
        for cex in check["counterexamples"]:
            names = [f["name"] for f in cex["facts"]]
            assert any(n.startswith("--set idt.0x0") for n in names), names
            for k in cex["knobs"]:
                if k["name"] in ("idt.0x03.dpl", "idt.0x04.dpl"):
                    assert k["violating_text"] != "set by the spec"


def test_explain_states_the_override(capsys):
    code, out, _ = run(capsys, "explain", "--spec", "xen", "--set", "insn=int_n", "--set", "vector=0x21",
                       "--set", "idt.0x21.dpl=3")
    assert code == 0 and out.splitlines()[1].startswith("what-if: --set idt.0x21.dpl=3")
    assert "dpl=3 (--set: overrides the spec)" in out
    code, out, _ = run(capsys, "explain", "--spec", "xen", "--set", "insn=int_n", "--set", "vector=0x21",
                       "--set", "idt.0x21.dpl=3", "--json")
    assert json.loads(out)["overrides"] == ["idt.0x21.dpl=3"]


# ---- item 6: readable by default -------------------------------------------------------------

def test_one_check_is_not_checks(tmp_path, capsys):
    f = tmp_path / "one.inv"
    f.write_text('invariant x {\n  specs xen\n  cite "t"\n  assume insn == int3\n  prove hw.event != syscall\n}\n')
    code, out, _ = run(capsys, "prove", str(f))
    assert code == 0 and out.rstrip().splitlines()[-1] == "1 check: 1 proved"


def test_refutations_come_first(capsys):
    code, out, _ = run(capsys, "prove", str(ROOT / "proofs" / "pv-n.inv"), "--set", "idt.4.dpl=0",
                       "--format", "email")
    verdicts = [line.split()[0] for line in out.split("\n\n")[1].splitlines()]
    assert verdicts and verdicts[0] == "refuted" and verdicts == sorted(
        verdicts, key=["error", "refuted", "unknown", "vacuous", "proved"].index)


BOUND_UD = """invariant bound-64bit-ud {
  specs xen, xen-4.17, xen-fred
  cite "t"
  assume insn == bound and mode == long64
  assume sig_read_fault == 0 and tt[6].present
  prove guest.event == exception and guest.vector == 6
}

invariant bound-64bit-ud-again {
  specs xen, xen-4.17
  cite "t"
  assume insn == bound and mode == long64 and tt[6].present and sig_read_fault == 0
  prove guest.event == exception
}

invariant int3-is-bp {
  specs xen, xen-4.17
  cite "t"
  assume insn == int3 and tt[3].present and not debugger
  prove guest.vector == 3
}
"""


@pytest.fixture(scope="module")
def proved_reports(tmp_path_factory):
    """Text, email and markdown (default and -v) of an all-proved run: 7 checks on 3 specs, two
    invariants relying on one UNCERTAIN rule (hw.bound.long64) on every spec."""
    f = tmp_path_factory.mktemp("proved") / "bound.inv"
    f.write_text(BOUND_UD)
    out = {}
    for fmt in ("text", "email", "markdown"):
        for verbose in ((), ("-v",)):
            out_file = f.parent / f"{fmt}{''.join(verbose)}.out"
            assert main(["prove", str(f), "--format", fmt, "-o", str(out_file), *verbose]) == 0
            out[(fmt, bool(verbose))] = out_file.read_text()
    return out


@pytest.mark.parametrize("fmt", ["text", "email", "markdown"])
def test_proofs_are_one_line_per_spec_unless_verbose(proved_reports, fmt):
    short, full = proved_reports[(fmt, False)], proved_reports[(fmt, True)]
    assert "int3-is-bp" not in short and "int3-is-bp" in full
    for spec, n in (("xen", 3), ("xen-4.17", 3), ("xen-fred", 1)):
        assert sum(spec in line.replace("`", " ").split() and f" {n} proved" in line
                   for line in short.splitlines()) == 1, short
    assert len(short.splitlines()) < len(full.splitlines()) / 2


@pytest.mark.parametrize("fmt", ["text", "email", "markdown"])
def test_identical_uncertain_notes_are_grouped(proved_reports, fmt):
    short = " ".join(proved_reports[(fmt, False)].split())  # the email wraps lines
    assert short.count("hw.bound.long64") == 1 and short.count("0x62 is the EVEX prefix") == 1, short
    listing = short[short.index("hw.bound.long64"):]
    assert "bound-64bit-ud [xen, xen-4.17, xen-fred]" in listing and "bound-64bit-ud-again [xen, xen-4.17]" in listing
    assert " ".join(proved_reports[(fmt, True)].split()).count("0x62 is the EVEX prefix") == 5  # -v: each in full


def test_refutations_are_shown_in_full_beside_the_summarised_proofs(capsys):
    code, out, _ = run(capsys, "prove", str(ROOT / "proofs" / "pv-n.inv"), "--set", "idt.4.dpl=0")
    table = out.split("\n\n")[1].splitlines()
    assert code == 1 and table[0].startswith("invariant") and all(" refuted " in row for row in table[2:]), table
    assert "path:" in out and "proved, one line per spec" in out


def test_an_idt_path_says_where_fred_differs(capsys):
    int80 = ["--set", "insn=int_n", "--set", "vector=0x80", "--set", "tt.0x80.present=1", "--set", "tt.0x80.dpl=0"]
    code, out, _ = run(capsys, "explain", "--spec", "xen", *int80)
    step = next(line for line in out.splitlines() if "IDT delivery (opt_fred=0)" in line)
    assert code == 0 and "with FRED (opt_fred=1) the guest sees instead: #GP(0x402)" in step and "traps.c" in step
    code, out, _ = run(capsys, "explain", "--spec", "xen", "--set", "insn=int3")  # the same under FRED
    assert [line for line in out.splitlines() if "opt_fred" in line] == ["  3. [xen] IDT delivery (opt_fred=0)"]
    code, out, _ = run(capsys, "explain", "--spec", "xen-4.17", *int80)  # 4.17 has no FRED code
    assert "FRED" not in out
    code, out, _ = run(capsys, "explain", "--spec", "xen", "--set", "insn=int3", "--set", "guest=pv32",
                       "--set", "mode=compat", "--set", "cpl=3")
    assert "FRED (opt_fred=1) runs no PV32 guests" in out


def test_explain_help_shows_explains_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["explain", "--help"])
    out = capsys.readouterr().out
    assert "the configuration was evaluated" in out and "some invariant refuted" not in out


def test_a_single_equals_sign_suggests_double(tmp_path, capsys):
    f = tmp_path / "bad.inv"
    f.write_text('invariant x {\n  specs xen\n  cite "t"\n  assume insn = int3\n  prove hw.event == idt\n}\n')
    code, _, err = run(capsys, "prove", str(f))
    assert code == 2 and "did you mean '=='?" in err


def test_syntax_errors_say_what_was_expected_in_words(tmp_path, capsys):
    f = tmp_path / "bad.inv"
    f.write_text('invariant x {\n  specs xen\n  cite "t"\n  assume insn ==\n  prove hw.event == idt\n}\n')
    code, _, err = run(capsys, "prove", str(f))
    assert code == 2 and "expected an operator" in err and err.count("'") < 20, err


def test_check_xen_proofs_does_not_swallow_the_tree(capsys):
    from pvsmt.cli.main import build_parser
    args = build_parser().parse_args(["check-xen", "--proofs", "proofs/", "TREE"])
    assert args.proofs == ["proofs/"] and str(args.tree) == "TREE"


# ---- item 7: the README says what the code does ---------------------------------------------

def test_readme_names_every_guest_field_and_the_required_cite(tmp_path, capsys):
    from pvsmt.model.vocab import GUEST_FIELDS, HW_FIELDS
    readme = (ROOT / "README.md").read_text()
    names = readme[readme.index("- Names: the knobs"):readme.index("- Enumeration values")]
    assert "guest.event|" + "|".join(GUEST_FIELDS).split("|", 1)[1] in " ".join(names.split()) or all(
        f in names for f in GUEST_FIELDS)
    assert all(f in names for f in HW_FIELDS)
    assert "at least one `cite`" in readme
    f = tmp_path / "nocite.inv"
    f.write_text('invariant x {\n  specs xen\n  assume insn == int3\n  prove hw.event != syscall\n}\n')
    code, _, err = run(capsys, "prove", str(f))
    assert code == 2 and "cites no source" in err
    assert "The whole suite takes about" in readme
