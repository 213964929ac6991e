"""A normal (non-editable) install runs every subcommand from an empty directory (issue 15, item 1).

The checkout's files are copied to a temporary directory, built into a wheel (pip,
with build isolation: setuptools from the package index) and installed into a fresh
venv without pip or dependencies; the dependencies come from the running
interpreter's site-packages through a plain path line (its .pth files, such as an
editable pvsmt's, are not processed).  Every command then runs from an empty
directory with the installed entry point, so nothing can come from the checkout.

End-to-end tier (`-m e2e`); about 30 s.  `validate` is skipped when QEMU is missing,
unless PVSMT_REQUIRE_EMULATORS=1.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TREE = ROOT / "tests" / "fixtures" / "xen-trees" / "new-layout"
SHIPPED = ("pyproject.toml", "README.md", "pvsmt", "specs", "proofs", "diffs", "emulators")

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(the installed `pvsmt` script, an empty working directory)."""
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    for name in SHIPPED:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=ignore)
        else:
            shutil.copy(ROOT / name, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    built = subprocess.run([*pip, "wheel", "--no-deps", "-w", str(tmp / "dist"), str(src)], capture_output=True,
                           text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = venv / "bin" / "python"
    wheel = next((tmp / "dist").glob("pvsmt-*.whl"))
    done = subprocess.run([*pip, "--python", str(python), "install", "--no-deps", str(wheel)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    deps = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (Path(purelib) / "zz-pvsmt-test-deps.pth").write_text("".join(f"{d}\n" for d in deps))
    empty = tmp / "empty"
    empty.mkdir()
    return venv / "bin" / "pvsmt", empty


def run(installed, *argv, timeout=120) -> subprocess.CompletedProcess:
    script, cwd = installed
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return subprocess.run([str(script), *argv], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def test_the_installed_package_is_used(installed):
    script, cwd = installed
    where = subprocess.run([str(script.parent / "python"), "-c", "import pvsmt; print(pvsmt.__file__)"], cwd=cwd,
                           capture_output=True, text=True, check=True).stdout
    assert str(script.parent.parent) in where and str(ROOT) not in where
    assert run(installed, "--version").stdout.startswith("pvsmt ")


def test_prove_without_a_path_proves_the_shipped_suite(installed):
    p = run(installed, "prove", "--format", "json", "-o", "report.json")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "proved" in p.stdout and (installed[1] / "report.json").exists()


def test_explain_table_and_diff_take_shipped_names(installed):
    p = run(installed, "explain", "--spec", "xen", "--set", "insn=int_n", "--set", "vector=0x80")
    assert p.returncode == 0, p.stderr
    p = run(installed, "table", "--spec", "xen")
    assert p.returncode == 0 and "INT3" in p.stdout, p.stderr
    p = run(installed, "diff", "xen", "xen-fred", "--expect", "xen--xen-fred")
    assert p.returncode == 0 and "no unexpected differences" in p.stdout, p.stdout + p.stderr


def test_extract_a_spec_named_by_its_file_and_diff_it(installed):
    p = run(installed, "extract", str(TREE))
    assert p.returncode == 0 and "spec xen-extracted" in p.stdout, p.stderr
    (installed[1] / "x.spec").write_text(p.stdout)  # its name (xen-extracted) is not its file's
    p = run(installed, "diff", "--level", "hardware", "x.spec", "xen")
    assert p.returncode in (0, 1) and not p.stderr, p.stderr  # read and compared (test_extract: equivalent)


MINE = """invariant int3-is-bp {
  specs xen
  cite "mine"
  assume insn == int3 and not debugger and tt[3].present
  prove guest.event == exception and guest.vector == 3
}
"""


def test_check_xen_with_an_invariant_of_ones_own(installed):
    (installed[1] / "mine.inv").write_text(MINE)  # `specs xen`: the shipped spec
    p = run(installed, "check-xen", "--proofs", "mine.inv", str(TREE), timeout=300)
    assert p.returncode in (0, 1, 3) and not p.stderr, p.stderr   # 3: the fixture tree has no modelled function
    assert "int3-is-bp" in p.stdout and "== the tree against spec xen" in p.stdout


def test_validate_finds_the_shipped_known_divergences(installed):
    from pvsmt.validate.emulator import available
    why = available("qemu")
    if why and os.environ.get("PVSMT_REQUIRE_EMULATORS") != "1":
        pytest.skip(f"qemu: {why}")
    p = run(installed, "validate", "--emulator", "qemu", "--vendor", "intel", timeout=600)
    assert p.returncode in (0, 1), p.stderr  # 2 would be a missing file or toolchain
    assert "cases:" in p.stdout
