"""An instruction is one row (pvsmt/model/instructions.py): every part reads it, and a missing
piece is an error when pvsmt.model is imported, never a silent #UD."""

import dataclasses
import itertools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pvsmt.backends.concrete import evaluate
from pvsmt.backends.configure import resolve
from pvsmt.errors import InputError
from pvsmt.lang.parse import SpecLoader
from pvsmt.model import instructions
from pvsmt.model.instructions import BY_INSN, INSTRUCTIONS, IncompleteModel
from pvsmt.report.wording import OPCODE
from pvsmt.model.vocab import CodeMode, Guest, GuestMode, Insn, Vendor

ROOT = Path(__file__).resolve().parent.parent


def _patched_package(tmp_path: Path) -> tuple[Path, int]:
    """A copy of pvsmt whose vocab.Insn has one more member, FAKE, and nothing else does."""
    shutil.copytree(ROOT / "pvsmt", tmp_path / "pvsmt", ignore=shutil.ignore_patterns("__pycache__"))
    vocab = tmp_path / "pvsmt" / "model" / "vocab.py"
    text = vocab.read_text()
    bound = "    BOUND = 10    # 62 /r, memory operand\n"
    assert bound in text
    vocab.write_text(text.replace(bound, bound + "    FAKE = 11     # 0F 0D, not modelled anywhere else\n"))
    line = vocab.read_text().splitlines().index("    FAKE = 11     # 0F 0D, not modelled anywhere else") + 1
    return tmp_path, line


def _run(tree: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([sys.executable, *args], cwd=tree, env=env, capture_output=True, text=True, timeout=120)


def test_an_instruction_only_in_vocab_is_a_located_error_at_import(tmp_path):
    """Before the instruction table, FAKE was #UD in both dispatchers (every check stayed proved)
    and `explain --set insn=fake` crashed with a KeyError from report.OPCODE."""
    tree, line = _patched_package(tmp_path)
    p = _run(tree, "-c", "import pvsmt.model")
    assert p.returncode != 0
    assert f"pvsmt/model/vocab.py:{line}: error: instruction fake has no row" in p.stderr, p.stderr
    assert "IncompleteModel" in p.stderr
    p = _run(tree, "-m", "pvsmt", "explain", "--spec", "xen", "--set", "insn=fake")
    assert p.returncode != 0 and "instruction fake has no row" in p.stderr, p.stderr
    assert "KeyError" not in p.stderr and "#UD" not in p.stdout


@pytest.mark.parametrize("layer", instructions.LAYERS)
def test_a_row_without_a_rule_at_a_layer_is_a_located_error(layer):
    rows = tuple(dataclasses.replace(r, **{layer: None}) if r.insn == Insn.UD1 else r for r in INSTRUCTIONS)
    with pytest.raises(IncompleteModel, match=f"instruction ud1 has no {layer} rule") as err:
        instructions._check(rows)
    assert re.search(r"instructions\.py:\d+$", str(err.value.where))
    assert isinstance(err.value, InputError)


def test_a_missing_row_and_a_second_row_are_errors():
    with pytest.raises(IncompleteModel, match="instruction bound has no row"):
        instructions._check(tuple(r for r in INSTRUCTIONS if r.insn != Insn.BOUND))
    with pytest.raises(IncompleteModel, match="instruction int3 has two rows"):
        instructions._check(INSTRUCTIONS + INSTRUCTIONS[:1])


def test_a_rule_shared_with_two_functions_is_an_error():
    odd = tuple(dataclasses.replace(r, hw=dataclasses.replace(r.hw, then=lambda s: None))
                if r.insn == Insn.UD2 else r for r in INSTRUCTIONS)
    with pytest.raises(IncompleteModel, match="rule hw.ud is taken with two different functions"):
        instructions._check(odd)


@pytest.mark.parametrize("layer", ["hw", "doc"])
def test_the_dispatchers_cases_partition_the_instructions(layer):
    """No catch-all: the last case (the Z3 encoding's else branch) takes exactly its own rows."""
    groups = instructions._DISPATCH[layer]
    taken = [i for insns, _ in groups for i in insns]
    assert sorted(taken) == list(Insn) and len(taken) == len(set(taken))
    for insns, handling in groups:
        assert all(getattr(BY_INSN[i], layer) is handling or getattr(BY_INSN[i], layer).rule is handling.rule
                   for i in insns)


def test_every_part_names_every_instruction_from_its_row(capsys):
    from pvsmt.report import table
    from pvsmt.cli.main import main
    from pvsmt.validate import cases, xencases
    assert set(OPCODE) == set(Insn)
    assert cases.INSNS == tuple(i.label for i in Insn)
    with pytest.raises(SystemExit):
        main(["explain", "--help"])
    assert f"insn={'|'.join(i.label for i in Insn)}\n" in capsys.readouterr().out
    assert {s["insn"] for _, s in table.INSTRUCTIONS} == {r.insn for r in INSTRUCTIONS if r.shown}
    # the bytes xenguest/guest.c build_stub writes
    lengths = {(c.insn, c.mode, c.prefix): xencases.insn_length(c) for c in
               (xencases.XenCase(0, insn=i, mode=m, prefix=p) for i in cases.INSNS for m in ("long64", "compat")
                for p in ("none", "legacy", "rex") if p == "none" or i == "int_n")}
    assert lengths[("callgate", "compat", "none")] == 7 and lengths[("callgate", "long64", "none")] == 2
    assert lengths[("int_n", "long64", "rex")] == 3 and lengths[("ud0", "long64", "none")] == 3
    assert lengths[("bound", "compat", "none")] == 2 and lengths[("int3", "compat", "none")] == 1


def _paths(spec, settings):
    """The rule names on the path of each situation the table shows, with `settings`."""
    for guest, mode, code, vendor in itertools.product(Guest, GuestMode, CodeMode, Vendor):
        try:
            resolved = resolve(spec, {**settings, "guest": guest, "guest_mode": mode, "mode": code, "vendor": vendor})
        except InputError:
            continue
        yield [step.rule.name for step in evaluate(resolved.config, guests=True).trace]


@pytest.mark.parametrize("row", INSTRUCTIONS, ids=lambda r: r.insn.label)
def test_each_layer_takes_the_instruction_by_its_rows_rule(row):
    """hw and doc dispatch by the row's rule; Xen's entry code takes its event at the row's rule."""
    shown = row.shown or (("", {}),)
    for spec_name, layers in (("xen", ("hw", "xen_idt")), ("xen-fred", ("hw", "xen_fred")),
                              ("pv-traps-doc", ("hw", "doc"))):
        spec = SpecLoader().load(ROOT / "specs" / f"{spec_name}.spec")
        paths = [p for _, s in shown for p in _paths(spec, {"insn": row.insn, **s})]
        assert paths, spec_name
        for layer in layers:
            got = getattr(row, layer)
            rule = got.rule.name if layer in ("hw", "doc") else got.name
            if layer in ("hw", "doc"):
                assert all(p[0 if layer == "hw" else p.index("xen.via_doc") + 1] == rule for p in paths), \
                    (spec_name, layer)
            else:
                assert any(rule in p for p in paths), (spec_name, layer, rule)
