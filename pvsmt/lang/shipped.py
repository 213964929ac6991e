"""The data pvsmt ships: specs, proofs, expected-difference files, known emulator divergences.

The repository keeps them at its top level (specs/, proofs/, diffs/, emulators/);
an installed pvsmt has them as package data under pvsmt/_data/ (pyproject.toml
maps each directory there).  Found with importlib.resources; in a source checkout
(an editable install) there is no pvsmt/_data/, and the checkout's own
directories are the shipped ones.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

KINDS = ("specs", "proofs", "diffs", "emulators")


def directory(kind: str) -> Path:
    """The shipped `kind` directory (one of KINDS)."""
    assert kind in KINDS, kind
    installed = resources.files("pvsmt") / "_data" / kind
    if installed.is_dir():
        return Path(str(installed))
    return Path(__file__).resolve().parents[2] / kind


def spec(name: str) -> Path | None:
    """The shipped spec NAME (`xen` -> .../specs/xen.spec), or None."""
    path = directory("specs") / f"{name}.spec"
    return path if path.is_file() else None


def names() -> list[str]:
    """The names of the shipped specs."""
    return sorted(p.stem for p in directory("specs").glob("*.spec"))


def spec_argument(arg: str | Path) -> Path:
    """A spec named on the command line: a path to a .spec file, or a NAME, which is
    specs/NAME.spec below the working directory if there is one, else the shipped spec NAME."""
    text = str(arg)
    path = Path(text)
    if path.exists() or path.suffix == ".spec" or "/" in text or os.sep in text:
        return path
    local = Path("specs") / f"{text}.spec"
    if local.is_file():
        return local
    found = spec(text)
    if found is not None:
        return found
    from ..errors import InputError
    raise InputError(text, f"no spec '{text}': not a file, no specs/{text}.spec here, and not a shipped spec "
                           f"({', '.join(names())})")


def expect_argument(arg: str | Path) -> Path:
    """An --expect file: a path, or NAME for the shipped diffs/NAME.expect (`xen--xen-fred`)."""
    path = Path(arg)
    if path.exists() or path.suffix == ".expect" or "/" in str(arg):
        return path
    shipped = directory("diffs") / f"{arg}.expect"
    return shipped if shipped.is_file() else path


__all__ = ["KINDS", "directory", "expect_argument", "names", "spec", "spec_argument"]
