"""prove's result cache (issue 14): a cached report is the fresh one's bytes; any input edit is a miss."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pvsmt.analysis import cache as prove_cache

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent

# Runs `pvsmt ARGS...` and reports on stderr's last line whether Z3 was imported (a hit imports none).
RUN = ("import runpy, sys\nsys.argv = ['pvsmt', *sys.argv[1:]]\ncode = 0\n"
       "try:\n    runpy.run_module('pvsmt', run_name='__main__')\nexcept SystemExit as exc:\n    code = exc.code\n"
       "sys.stderr.write('\\nsolved' if 'z3' in sys.modules else '\\ncached')\nsys.exit(code)\n")

INV = """\
invariant int3-is-a-breakpoint {
  specs mine
  cite "SDM Vol.3A table 6-1"
  assume insn == int3 and idt[3].present and idt[3].dpl == 3
  prove hw.event == idt and hw.vector == 3
}
"""


def pvsmt(work: Path, cache: Path, *args: str):
    env = {**{k: v for k, v in os.environ.items() if k != "PVSMT_NO_CACHE"}, "XDG_CACHE_HOME": str(cache), "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-c", RUN, *args], cwd=work, env=env, capture_output=True)
    stderr, _, how = run.stderr.decode().rpartition("\n")
    return run.returncode, run.stdout, stderr, how


@pytest.fixture
def work(tmp_path):
    (tmp_path / "specs").mkdir()
    shutil.copy(ROOT / "specs" / "bare-x86.spec", tmp_path / "specs" / "mine.spec")
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "a.inv").write_text(INV)
    return tmp_path


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_cached_report_is_the_fresh_reports_bytes(work, tmp_path, fmt):
    cache = tmp_path / "cache"
    fresh = pvsmt(work, cache, "prove", "p", "--format", fmt, "--no-cache")
    assert fresh[3] == "solved" and not cache.exists()  # --no-cache neither reads nor writes
    first = pvsmt(work, cache, "prove", "p", "--format", fmt)
    second = pvsmt(work, cache, "prove", "p", "--format", fmt)
    assert (first[3], second[3]) == ("solved", "cached")
    assert fresh[:3] == first[:3] == second[:3]
    assert fresh[0] == 0 and fresh[1]


def test_options_are_part_of_the_key(work, tmp_path):
    cache = tmp_path / "cache"
    pvsmt(work, cache, "prove", "p")
    assert pvsmt(work, cache, "prove", "p", "--format", "email")[3] == "solved"
    assert pvsmt(work, cache, "prove", "p", "--rlimit", "40000000")[3] == "solved"
    assert pvsmt(work, cache, "prove", "p", "--set", "cpl=3")[3] == "solved"
    assert pvsmt(work, cache, "prove", "p", "--timings")[3] == "solved"  # never cached
    assert pvsmt(work, cache, "prove", "p", "--timings")[3] == "solved"
    assert pvsmt(work, cache, "prove", "p")[3] == "cached"


def test_editing_an_invariant_a_spec_or_its_parent_is_a_miss(work, tmp_path):
    cache = tmp_path / "cache"
    before = pvsmt(work, cache, "prove", "p")
    assert before[0] == 0
    spec = work / "specs" / "mine.spec"
    spec.write_text(spec.read_text().replace("spec bare-x86", "spec mine"))  # the report names it
    after = pvsmt(work, cache, "prove", "p")
    assert after[3] == "solved" and after[1] != before[1]
    assert pvsmt(work, cache, "prove", "p")[3] == "cached"
    inv = work / "p" / "a.inv"
    inv.write_text(INV.replace("hw.vector == 3", "hw.vector == 4"))
    refuted = pvsmt(work, cache, "prove", "p")
    assert refuted[3] == "solved" and refuted[0] == 1
    # a parent: `extends` reads the spec beside the child first
    (work / "specs" / "base.spec").write_text(spec.read_text().replace("spec mine", "spec base"))
    spec.write_text('spec mine "mine"\nextends base\n')
    inv.write_text(INV)
    assert pvsmt(work, cache, "prove", "p")[::3] == (0, "solved")
    assert pvsmt(work, cache, "prove", "p")[3] == "cached"
    parent = work / "specs" / "base.spec"
    parent.write_text(parent.read_text() + "# an edit that changes no verdict\n")
    assert pvsmt(work, cache, "prove", "p")[3] == "solved"


def test_a_spec_created_where_one_was_looked_for_is_a_miss(work, tmp_path):
    cache = tmp_path / "cache"
    pvsmt(work, cache, "prove", "p")
    assert pvsmt(work, cache, "prove", "p")[3] == "cached"
    (work / "p" / "specs").mkdir()  # specs/NAME.spec beside the invariant comes first
    shutil.copy(work / "specs" / "mine.spec", work / "p" / "specs" / "mine.spec")
    assert pvsmt(work, cache, "prove", "p")[3] == "solved"


def test_the_key_covers_the_model_source(tmp_path, monkeypatch):
    package = tmp_path / "pkg"
    (package / "model").mkdir(parents=True)
    (package / "model" / "hardware.py").write_text("RULE = 1\n")
    monkeypatch.setattr(prove_cache, "PACKAGE", package)
    before = prove_cache._source()
    (package / "model" / "hardware.py").write_text("RULE = 2\n")
    assert prove_cache._source() != before
