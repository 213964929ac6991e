"""The package layout is the pipeline, and its imports point one way (docs/development.md).

The contracts are import-linter's, written in pyproject.toml ([tool.importlinter]): the
layers cli > validate > xen > report > analysis > backends > lang > model, and the leaf
modules errors, progress and interrupt.  Function-level imports count too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
LAYERS = CONFIG["contracts"][0]["layers"]
LEAVES = CONFIG["contracts"][1]["source_modules"]


def lint(root: Path) -> subprocess.CompletedProcess:
    """lint-imports over the pvsmt package found in `root`, with the project's contracts."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command; "
                           "lint_imports_command()", "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
                          capture_output=True, text=True, env=env, cwd=root)


def test_the_contracts_hold():
    out = lint(ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 kept, 0 broken" in out.stdout


def test_every_module_is_in_a_layer_or_a_leaf():
    """A new flat module would be outside every contract: put it in the package of its stage."""
    places = {name.split(".", 1)[1] for name in LAYERS + LEAVES}
    pvsmt = ROOT / "pvsmt"
    loose = sorted(p.relative_to(pvsmt).as_posix() for p in pvsmt.iterdir()
                   if (p.suffix == ".py" and p.stem not in places | {"__init__", "__main__"})
                   or (p.is_dir() and (p / "__init__.py").exists() and p.name not in places))
    assert loose == []


def test_an_upward_import_breaks_the_contract(tmp_path):
    """The contract is live: the model importing the report layer is reported."""
    shutil.copytree(ROOT / "pvsmt", tmp_path / "pvsmt", ignore=shutil.ignore_patterns("__pycache__"))
    rules = tmp_path / "pvsmt" / "model" / "rules.py"
    rules.write_text(rules.read_text() + "\n\ndef _upward():\n    from ..report import wording  # noqa: F401\n")
    out = lint(tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "pvsmt.model.rules -> pvsmt.report.wording" in out.stdout
