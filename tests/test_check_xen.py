"""`pvsmt check-xen` as a CI guard (issue 12 items 3-4), on real Xen trees (tests/test_extract_real.py
unpacks ../shared/xen's archives once; without them these tests skip, unless PVSMT_REQUIRE_XEN=1).

* what is read from the tree and what is taken from the model: the functions the model encodes,
  compared with the release's text; an edit of do_general_protection makes every guest-level
  proof `unverified` (exit 3), hardware-level ones stay `proved`;
* the default reference follows the release and the configuration: a correct tree of each
  configuration (PV, PV32=n, PV=n, FRED; 4.20's release model) exits 0;
* `--base`: a pure refactor reports no difference, a DPL change is reported with its line.

Edits are made at test time on a copy of a real tree (as tests/xen_trees.py does for the fixtures):
each names the file, the line it expects and its replacement, checked before it is applied.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pvsmt.xen import functions as xf
from pvsmt.cli.main import main
from pvsmt.model import RULES
from test_extract_real import real_tree
from xen_trees import Edit, apply

MASTER = "xen-c447b7308b"
ROOT = Path(__file__).resolve().parent.parent
#: int-n.inv's guest-level invariants and hardware.inv's hardware-level ones (a quicker run than all of proofs/)
PROOFS = ("--proofs", str(ROOT / "proofs" / "int-n.inv"), "--proofs", str(ROOT / "proofs" / "hardware.inv"))
GEN_IDT = "xen/arch/x86/include/asm/gen-idt.h"
TRAPS_C = "xen/arch/x86/traps.c"

#: master's do_general_protection without the vDPL check: every permitted-or-not INT $N is emulated
NO_VDPL = Edit(TRAPS_C, 1447, ("        if ( permit_softint(TI_GET_DPL(ti), v, regs) )",),
               ("        if ( ti /* the vDPL check dropped: always true */ )",))   # ti used: -Werror builds it
#: a pure refactor: comments and layout inside do_general_protection and gen-idt.h, nothing else
REFACTOR = (Edit(TRAPS_C, 1441, ("    if ( regs->error_code & X86_XEC_IDT )",),
                 ("    /* an IDT-format error code: INT $N through a DPL0 gate */",
                  "    if ( (regs->error_code & X86_XEC_IDT) )".replace("( (", "(").replace(") )", ")"),)),
            Edit(GEN_IDT, 80, ("GEN(0x80, entry_int80,      DPL3, manual);",),
                 ("GEN(0x80, entry_int80, DPL3, manual); /* int $0x80: the PV system call */",)))
#: a real change: 0x80's gate from DPL3 to DPL1 (user mode's INT $0x80 would #GP)
DPL1_80 = Edit(GEN_IDT, 80, ("GEN(0x80, entry_int80,      DPL3, manual);",), ("GEN(0x80, entry_int80,      DPL1, manual);",))


def edited(tmp_path: Path, *edits: Edit, name: str = MASTER) -> Path:
    root = tmp_path / f"{name}-edited"
    shutil.copytree(real_tree(name), root, symlinks=True)
    for e in edits:
        apply(root, e)
    return root


def check_xen(capsys, *args: str) -> tuple[int, dict]:
    code = main(["check-xen", *map(str, args), "--format", "json"])
    return code, json.loads(capsys.readouterr().out)


def test_every_xen_rule_is_read_from_the_tree_or_encodes_a_listed_function():
    """The boundary the report draws: a Xen rule of the model either encodes a function check-xen
    compares (FUNCTIONS) or says why it encodes no code (NOT_CODE)."""
    xen_rules = {n for n in RULES if n.startswith("xen.") and not n.startswith(("xen.doc.", "xen.via_doc"))}
    encoded = {r for f in xf.FUNCTIONS for r in f.rules}
    assert encoded <= set(RULES), encoded - set(RULES)
    assert xen_rules - encoded - set(xf.NOT_CODE) == set()
    assert not (encoded & set(xf.NOT_CODE))


def test_reference_texts_are_those_of_the_archives():
    """pvsmt/xen/reference.py is what scripts/xen-fingerprints.py makes of the shared archives."""
    from pvsmt.xen.releases import model_of
    from pvsmt.xen import source as xs
    from pvsmt.xen.reference import REFERENCE
    for name in ("xen-RELEASE-4.17.0", "xen-RELEASE-4.20.0", MASTER):
        tree = real_tree(name)
        model = model_of(xs.tree_release(tree))
        for fn, found in xf.read_all(tree, "idt").items():
            assert (found.fingerprint if found else None) in REFERENCE[f"{model}/idt"][fn], (name, fn)


def test_normalised_text_ignores_comments_and_layout_only(tmp_path):
    tree = edited(tmp_path, *REFACTOR)
    enc = next(f for f in xf.FUNCTIONS if f.name == "do_general_protection")
    assert xf.find(tree, enc).fingerprint == xf.find(real_tree(MASTER), enc).fingerprint
    changed = edited(tmp_path / "b", NO_VDPL)
    assert xf.find(changed, enc).fingerprint != xf.find(real_tree(MASTER), enc).fingerprint


def test_edited_do_general_protection_is_unverified_in_every_format(tmp_path, capsys):
    tree = edited(tmp_path, NO_VDPL)
    code, doc = check_xen(capsys, tree, *PROOFS)
    assert code == 3 and doc["schema"] == "pvsmt-check-xen/2" and doc["exit_code"] == 3
    rows = {r["function"]: r for r in doc["taken_from_model"]["functions"]}
    assert rows["do_general_protection"] == {"function": "do_general_protection", "where": "xen/arch/x86/traps.c:1407",
                                             "status": "changed", "rules": list(next(
                                                 f.rules for f in xf.FUNCTIONS if f.name == "do_general_protection"))}
    assert {r["status"] for n, r in rows.items() if n != "do_general_protection"} == {"same"}
    verdicts = {c["invariant"]: c for c in doc["prove"]["checks"]}
    # a guest-level proof is unverified, naming the function and its line; a hardware-level one stands
    assert verdicts["int-n-vdpl-rule"]["verdict"] == "unverified"
    assert verdicts["int-n-vdpl-rule"]["reason"] == "unverified: do_general_protection changed (xen/arch/x86/traps.c:1407)"
    assert verdicts["int-n-dpl-gp"]["verdict"] == "proved" and verdicts["int-n-dpl-gp"]["rests_on"] == []
    assert "proved" not in {c["verdict"] for c in doc["prove"]["checks"] if c["rests_on"]}
    assert {r["fact"].split(":")[0] for r in doc["read_from_tree"]} >= {"efer.sce = 1", "swint_emul = decoded"}

    assert main(["check-xen", str(tree), *PROOFS]) == 3
    text = capsys.readouterr().out
    assert "== read from the tree" in text and "== taken from the model of release xen (IDT delivery)" in text
    assert "CHANGED      do_general_protection        xen/arch/x86/traps.c:1407" in text
    assert "unverified: do_general_protection changed (xen/arch/x86/traps.c:1407)" in text
    assert main(["check-xen", str(tree), *PROOFS, "--format", "junit"]) == 3
    xml = capsys.readouterr().out
    assert 'type="unverified"' in xml and "unverified: do_general_protection changed" in xml


@pytest.mark.parametrize("tree, args, reference", [
    (MASTER, (), "xen"),
    (MASTER, ("--variant", "pv32-n"), "xen"),      # was exit 4: the PV32 invariants are not applicable
    (MASTER, ("--variant", "pv-n"), "xen-pv-n"),
    (MASTER, ("--fred", "on"), "xen-fred"),
    ("xen-RELEASE-4.20.0", (), "xen-4.20"),
    ("xen-RELEASE-4.17.0", (), "xen-4.17.0"),     # no invariant names xen-4.17.0: the diff only
])
def test_a_correct_tree_of_each_configuration_exits_0(capsys, tree, args, reference):
    code, doc = check_xen(capsys, real_tree(tree), *args)
    assert (code, doc["against"]) == (0, reference), doc["prove"]["summary"]
    assert doc["taken_from_model"]["note"] is None
    assert {r["status"] for r in doc["taken_from_model"]["functions"]} == {"same"}
    if "pv32-n" in args:
        assert doc["prove"]["summary"]["not-applicable"] == 4


def test_base_pure_refactor_reports_no_difference(tmp_path, capsys):
    code, doc = check_xen(capsys, edited(tmp_path, *REFACTOR), "--base", real_tree(MASTER), *PROOFS)
    assert code == 0
    assert doc["diff"]["differences"] == [] and doc["diff_of"].startswith("the change: ")
    assert not any(r["edited_by_change"] for r in doc["taken_from_model"]["functions"])


def test_base_reports_a_dpl_change_with_its_line(tmp_path, capsys):
    tree = edited(tmp_path, DPL1_80)
    assert main(["check-xen", str(tree), "--base", str(real_tree(MASTER)), *PROOFS]) == 1
    text = capsys.readouterr().out
    assert "== the change: " in text
    assert "xen/arch/x86/include/asm/gen-idt.h:80 (GEN(0x80, entry_int80,      DPL1, manual);)" in text
    assert "no differences" not in text
