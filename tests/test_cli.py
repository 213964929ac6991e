"""The command line: verdicts, exit codes, located errors, explain output."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pvsmt.cli.main import main

ROOT = Path(__file__).resolve().parent.parent
XEN = str(ROOT / "specs" / "xen.spec")
BARE = str(ROOT / "specs" / "bare-x86.spec")


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


INV = """\
invariant {name} {{
  specs xen
  cite "test"
  assume {assume}
  prove {prove}
}}
"""


def inv(tmp_path, assume, prove, name="t"):
    spec_dir = tmp_path / "specs"
    if not spec_dir.exists():
        spec_dir.mkdir()
        (spec_dir / "xen.spec").write_text(Path(XEN).read_text())
    return write(tmp_path, f"{name}.inv", INV.format(name=name, assume=assume, prove=prove))


# ---- verdicts and exit codes ---------------------------------------------------------

def test_proved_exits_0(tmp_path, capsys):
    f = inv(tmp_path, "insn == int3 and tt[3].present and not debugger",
            "guest.event == exception and guest.vector == 3 and guest.kind == trap")
    code, out, _ = run(capsys, "prove", str(f))
    assert code == 0
    assert re.search(r"^\s+xen\s+1 proved$", out, re.M)  # proofs: one line per spec
    code, out, _ = run(capsys, "prove", str(f), "-v")
    assert re.search(r"^t\s+xen\s+proved", out, re.M)


def test_refuted_exits_1_with_counterexample_and_path(tmp_path, capsys):
    f = inv(tmp_path, "insn == int_n and vector == 0x80 and tt[0x80].present and tt[0x80].dpl == 0",
            "guest.event == exception and guest.vector == 13")
    code, out, _ = run(capsys, "prove", str(f))
    assert code == 1
    assert re.search(r"^t\s+xen\s+refuted\s+INT \$0x80", out, re.M)
    assert "entry_int80: TT[0x80] is non-null" in out
    assert "source: Xen x86_64/entry.S L478-516" in out   # each step cites its source
    assert f"{f}:1: t [xen]: refuted" in out


def test_vacuous_exits_4(tmp_path, capsys):
    f = inv(tmp_path, "insn == syscall and not efer.sce", "hw.event == idt")
    code, out, _ = run(capsys, "prove", str(f))
    assert code == 4
    assert re.search(r"^t\s+xen\s+vacuous\s", out, re.M) and "proved" not in out


def test_unknown_exits_3_with_reason(tmp_path, capsys):
    f = inv(tmp_path, "insn == int_n", "guest.event != xen_crash")
    code, out, _ = run(capsys, "prove", "--rlimit", "1", str(f))
    assert code == 3
    assert "unknown" in out and "resource" in out


def test_worst_verdict_decides(tmp_path, capsys):
    inv(tmp_path, "insn == syscall and not efer.sce", "hw.event == idt", name="vac")
    inv(tmp_path, "insn == int_n and vector == 0x80", "guest.vector == 13", name="ref")
    code, _, _ = run(capsys, "prove", str(tmp_path))
    assert code == 1  # refuted outranks vacuous


def test_spec_option_overrides_invariant_specs(tmp_path, capsys):
    f = inv(tmp_path, "insn == int3 and tt[3].present", "guest.vector == 3")
    code, out, _ = run(capsys, "prove", "--spec", BARE, str(f))
    assert code == 4  # guest-level invariant against a spec without guests
    assert "has no PV guests" in out


def test_prove_set_what_if(tmp_path, capsys):
    f = inv(tmp_path, "insn == int_n and vector == 0x21", "not (hw.event == idt and hw.vector == 0x21)")
    assert run(capsys, "prove", str(f))[0] == 0
    code, out, _ = run(capsys, "prove", "--set", "idt.0x21.dpl=3", str(f))
    assert code == 1 and "INT $0x21" in out


def test_same_input_same_output(tmp_path, capsys):
    f = inv(tmp_path, "insn == callgate", "guest.event == exception")
    first = run(capsys, "prove", str(f))[1]
    second = run(capsys, "prove", str(f))[1]
    mask = lambda s: re.sub(r"\d+\.\d+s", "T", s)  # noqa: E731
    assert mask(first) == mask(second)


# ---- bad input: file:line: error: message, exit 2, no traceback --------------------------

BAD_INVARIANTS = [
    ("invariant x {\n  specs xen\n  cite \"c\"\n  prove insn ==\n}\n", 5, "unexpected '}'"),
    ("invariant x {\n  specs xen\n  cite \"c\"\n  prove insnn == int3\n}\n", 4, "did you mean 'insn'"),
    ("invariant x {\n  specs xen\n  cite \"c\"\n  prove insn == 3\n}\n", 4, "cannot compare"),
    ("invariant x {\n  specs xen\n  cite \"c\"\n  prove insn == int4\n}\n", 4, "'int4' is not a value"),
    ("invariant x {\n  specs xen\n  cite \"c\"\n  prove tt[3].dpl == 1 + cb.syscall\n}\n", 4, "expected a number"),
    ("invariant x {\n  specs nosuch\n  cite \"c\"\n  prove of\n}\n", 2, "no spec 'nosuch'"),
    ("invariant x {\n  specs xen\n  prove of\n}\n", 1, "cites no source"),
]


@pytest.mark.parametrize("text,line,message", BAD_INVARIANTS)
def test_bad_invariant_located(tmp_path, capsys, text, line, message):
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "xen.spec").write_text(Path(XEN).read_text())
    f = write(tmp_path, "bad.inv", text)
    code, out, err = run(capsys, "prove", str(f))
    assert code == 2
    assert re.match(rf"{re.escape(str(f))}:{line}(:\d+)?: error: .*{re.escape(message)}", err), err


BAD_SPECS = [
    ("spec s\nidt 0x100 dpl=0\n", 2, "over 255"),
    ("spec s\nidt 0x10 dpl=4\n", 2, "out of range 0..3"),
    ("spec s\nset efer.sce = maybe\n", 2, "bad value"),
    ("spec s\nset eferr.sce = 1\n", 2, "did you mean 'efer.sce'"),
    ("spec t\nextends nowhere\n", 2, "no spec 'nowhere'"),
]


@pytest.mark.parametrize("text,line,message", BAD_SPECS)
def test_bad_spec_located(tmp_path, capsys, text, line, message):
    f = write(tmp_path, "s.spec", text)
    code, _, err = run(capsys, "explain", "--spec", str(f))
    assert code == 2
    assert re.match(rf"{re.escape(str(f))}:{line}(:\d+)?: error: .*{re.escape(message)}", err), err


BAD_SETTINGS = [
    (["vector=256"], "--set vector=256", "out of range"),
    (["tt.0x80.dpl=4"], "--set tt.0x80.dpl=4", "out of range"),
    (["idt.300.dpl=0"], "--set idt.300.dpl=0", "over 255"),
    (["insn=int4"], "--set insn=int4", "expected one of"),
    (["vendr=intel"], "--set vendr=intel", "did you mean 'vendor'"),
    (["of=2"], "--set of=2", "expected 0|1"),
    (["guest=pv32", "mode=long64"], "--set", "contradictory settings guest=pv32, mode=long64"),
    (["vector=3", "vector=4"], "--set vector=4", "already set"),
    (["novalue"], "--set novalue", "expected NAME=VALUE"),
]


@pytest.mark.parametrize("settings,where,message", BAD_SETTINGS)
def test_bad_setting_located(capsys, settings, where, message):
    args = ["explain", "--spec", XEN] + [a for s in settings for a in ("--set", s)]
    code, _, err = run(capsys, *args)
    assert code == 2
    assert err.startswith(f"{where}: error: ") and message in err, err


def test_missing_files_exit_2(capsys, tmp_path):
    assert run(capsys, "prove", str(tmp_path / "none.inv"))[0] == 2
    code, _, err = run(capsys, "explain", "--spec", str(tmp_path / "none.spec"))
    assert code == 2 and "no such file" in err


def test_no_traceback_from_the_real_entry_point(tmp_path):
    f = write(tmp_path, "bad.inv", "invariant x { prove ( }")
    proc = subprocess.run([sys.executable, "-m", "pvsmt", "prove", str(f)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and f"{f}:1:" in proc.stderr


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["prove", "--no-such-option"])
    assert exc.value.code == 2
    assert main([]) == 2


def test_help_documents_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["prove", "--help"])
    out = capsys.readouterr().out
    for line in ("0  every check proved", "1  some invariant refuted", "3  some check unknown",
                 "4  some check vacuous"):
        assert line in out


def test_help_imports_no_solver():
    """`pvsmt --help` starts in about the time of `import z3` or less (issue 14): it imports neither
    Z3, the model, the parser nor the table renderer; a command imports what it needs when it runs."""
    code = ("import runpy, sys\nsys.argv = ['pvsmt', '--help']\ntry:\n    runpy.run_module('pvsmt', run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            "sys.stderr.write(' '.join(m for m in ('z3', 'lark', 'tabulate', 'pvsmt.model', 'pvsmt.model.vocab') "
            "if m in sys.modules))")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert "usage: pvsmt" in run.stdout
    assert run.stderr == ""


# ---- explain ------------------------------------------------------------------------------

def explain_json(capsys, spec, *settings):
    args = ["explain", "--spec", spec, "--json"] + [a for s in settings for a in ("--set", s)]
    code, out, _ = run(capsys, *args)
    assert code == 0
    return json.loads(out)


def test_explain_json_int80_slow_path(capsys):
    d = explain_json(capsys, XEN, "insn=int_n", "vector=0x80", "tt.0x80.present=0", "tt.0x80.dpl=0")
    assert d["hardware"] == {"event": "idt", "vector": 0x80, "error_code": None, "source": "sw_int",
                             "kind": "trap", "msr": None, "gate_type": "interrupt"}
    assert d["guest"]["event"] == "exception"
    assert (d["guest"]["vector"], d["guest"]["error_code"], d["guest"]["kind"]) == (13, 0x402, "fault")
    rules = [t["rule"] for t in d["trace"]]
    assert "xen.int80.slow" in rules and all(t["source"] for t in d["trace"])


def test_explain_json_reports_defaults(capsys):
    d = explain_json(capsys, XEN, "insn=syscall")
    assert "guest" in d["defaulted"] and "insn" not in d["defaulted"]
    assert d["guest"]["event"] == "callback" and d["guest"]["callback"] == "syscall"
    assert d["guest"]["kind"] is None and d["guest"]["error_code"] is None


def test_explain_what_if_override(capsys):
    d = explain_json(capsys, XEN, "insn=int_n", "vector=0x21", "idt.0x21.dpl=3")
    assert d["hardware"]["vector"] == 0x21 and d["guest"]["event"] == "unmodelled"


def test_explain_bare_hardware_only(capsys):
    d = explain_json(capsys, BARE, "insn=sysenter", "sysenter_cs=0")
    assert d["guest"] is None
    assert (d["hardware"]["vector"], d["hardware"]["error_code"]) == (13, 0)


def test_explain_text_says_what_was_defaulted(capsys):
    code, out, _ = run(capsys, "explain", "--spec", XEN, "--set", "insn=into", "--set", "guest=pv32",
                       "--set", "of=1")
    assert code == 0
    assert "#OF trap via TT[0x04]" in out
    assert "defaulted (the spec's defaults; change with --set):" in out


def test_same_output_across_processes(tmp_path):
    f = inv(tmp_path, "insn in {callgate, int_n, sysenter}", "guest.event == exception")
    runs = [subprocess.run([sys.executable, "-m", "pvsmt", "prove", str(f)], capture_output=True, text=True)
            for _ in range(2)]
    mask = lambda s: re.sub(r"\d+\.\d+s", "T", s)  # noqa: E731
    assert runs[0].returncode == runs[1].returncode == 1
    assert mask(runs[0].stdout) == mask(runs[1].stdout)


def test_file_without_invariants_is_an_error(tmp_path, capsys):
    f = write(tmp_path, "empty.inv", "# nothing here\n")
    code, _, err = run(capsys, "prove", str(f))
    assert code == 2 and "no invariants to prove" in err


def test_deeply_nested_expression_is_an_error_not_a_traceback(tmp_path):
    f = write(tmp_path, "deep.inv", 'invariant d {\n cite "x"\n specs xen\n prove ' + "not " * 3000 + "of\n}\n")
    proc = subprocess.run([sys.executable, "-m", "pvsmt", "prove", "--spec", XEN, str(f)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "nested too deeply" in proc.stderr


def test_bad_string_escape_is_located(tmp_path, capsys):
    f = write(tmp_path, "s.spec", 'spec s "\\x"\n')
    code, _, err = run(capsys, "explain", "--spec", str(f))
    assert code == 2 and err.startswith(f"{f}:1:8: error: bad string")


def test_counterexample_is_the_one_closest_to_the_spec_defaults(tmp_path, capsys):
    # Any prefix, guest kind, mode or vendor would do; the defaults (PV64 user, Intel,
    # 64-bit code, no prefix) are the unique closest choice and what the report must show.
    f = inv(tmp_path, "insn == int_n and vector == 0x21 and tt[0x21].present and tt[0x21].dpl == 3",
            "guest.event == exception and guest.vector == 13")
    code, out, _ = run(capsys, "prove", str(f))
    assert code == 1
    assert "INT $0x21 (CD 21) [Intel-like, PV64 user, 64-bit code, CPL3]" in out
