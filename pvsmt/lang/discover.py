"""Finding invariant files and the specs they name."""

from __future__ import annotations

from pathlib import Path

from typing import TYPE_CHECKING

from . import shipped
from ..errors import InputError, Location

if TYPE_CHECKING:  # the parser is imported by `pairs`: prove's result cache finds files without it
    from .parse import Invariant, SpecLoader
    from .spec import Spec


def invariant_files(paths: list[str]) -> list[Path]:
    """The .inv files under `paths` (directories are searched recursively, sorted)."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.rglob("*.inv"))
            if not found:
                raise InputError(str(p), "no .inv files in this directory")
            files += found
        elif p.exists():
            files.append(p)
        else:
            raise InputError(str(p), "no such file or directory")
    return files


def find_spec(name: str, near: Path, where: Location, probed: list[Path] | None = None) -> Path:
    """specs/NAME.spec in the invariant's directory or the nearest parent that has it (or the
    working directory), else the shipped spec NAME.  The places looked at in vain are added
    to `probed` (prove's result cache: a spec created there later would be read instead)."""
    for d in [near.resolve(), *near.resolve().parents, Path.cwd()]:
        candidate = d / "specs" / f"{name}.spec"
        if candidate.exists():
            return candidate
        if probed is not None:
            probed.append(candidate)
    found = shipped.spec(name)
    if found is not None:
        return found
    raise InputError(where, f"no spec '{name}': specs/{name}.spec not found beside {near} or above it, "
                            f"and pvsmt ships no spec of that name ({', '.join(shipped.names())})")


def pairs(files: list[Path], spec_files: list[Path] | None, loader: SpecLoader) -> list[tuple[Invariant, Spec]]:
    """Every (invariant, spec) pair to check, in file order."""
    from .parse import load_invariants
    out: list[tuple[Invariant, Spec]] = []
    given = [loader.load(p) for p in spec_files or []]
    found: dict[tuple[str, Path], Spec] = {}  # (name, directory): most invariants of a file name the same specs
    for f in files:
        for inv in load_invariants(f):
            if given:
                out += [(inv, s) for s in given]
                continue
            if not inv.specs:
                raise InputError(inv.where, f"invariant '{inv.name}' names no spec: add 'specs NAME' "
                                            f"or run with --spec FILE")
            for n, w in inv.specs:
                if (n, f.parent) not in found:
                    found[n, f.parent] = loader.load(find_spec(n, f.parent, w, loader.probed))
                out.append((inv, found[n, f.parent]))
    return out
