"""`pvsmt check-xen TREE --boot` (issue 12 item 5): an edit the static reading can only call
`unverified` (master's do_general_protection without the vDPL check) is found by booting the
tree's Xen: the cases of INT $N at a denying vDPL disagree, and the unverified verdicts become
`refuted`.  One test: it builds a second Xen (about 5 minutes on 2 cores, then cached by the
tree's contents) and boots it (about 2 minutes).  Skips without the master archive, QEMU or the
build tools, unless PVSMT_REQUIRE_XEN=1.
"""

from __future__ import annotations

import json
import shutil

import pytest

from pvsmt.cli.main import main
from test_check_xen import NO_VDPL, PROOFS, edited
from xen_builds import skip_or_fail

pytestmark = pytest.mark.slow


def test_boot_finds_the_dropped_vdpl_check(tmp_path, capsys):
    from pvsmt.validate.xenbuild import missing_tools
    if missing_tools():
        skip_or_fail(f"cannot build Xen: missing {', '.join(missing_tools())}")
    if shutil.which("qemu-system-x86_64") is None:
        skip_or_fail("no qemu-system-x86_64")
    tree = edited(tmp_path, NO_VDPL)
    code = main(["check-xen", str(tree), "--boot", *PROOFS, "--format", "json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1
    boot = doc["boot"]
    assert not boot["ok"] and boot["disagreements"]
    # the disagreeing cases are INT $N denied by the vDPL, whose model path takes xen.vdpl.deny
    assert all("xen.vdpl.deny" in d["rules"] for d in boot["disagreements"])
    assert {d["guest"].split()[0] for d in boot["disagreements"]} == {"pv64", "pv32"}
    verdicts = {c["invariant"]: c for c in doc["prove"]["checks"]}
    vdpl = verdicts["int-n-vdpl-rule"]
    assert vdpl["verdict"] == "refuted" and "do_general_protection" in vdpl["reason"]
    assert "proved" not in {c["verdict"] for c in doc["prove"]["checks"] if c["rests_on"]}
    assert verdicts["int-n-dpl-gp"]["verdict"] == "proved"        # hardware level: rests on no Xen function
