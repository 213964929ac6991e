"""Xen releases and the shipped spec that models each.

Guest-visible behaviour differs between releases (reference 9): the spec of a
release says which.  A Xen version (from a hypervisor's banner or a tree's
xen/Makefile) selects the spec here; a release pvsmt has no model of is an
error, never a silent fallback to master.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import InputError


@dataclass(frozen=True)
class Release:
    """A range of Xen versions that one spec models, and why they belong together."""

    spec: str
    first: tuple[int, int, int]
    last: tuple[int, int, int]  # inclusive
    why: str


#: Each version range and its spec, in order.  Point releases matter: commit a934a600c4
#: (INT $N emulation, `swint_emul`) reached 4.19.5, 4.20.3 and 4.21.1, never 4.17 or 4.18;
#: XSA-446 made the gates of 0x80/0x82 interrupt gates from 4.17.3.
RELEASES: tuple[Release, ...] = (
    Release("xen-4.17.0", (4, 17, 0), (4, 17, 2), "trap gates for 0x80 and 0x82 before XSA-446 (a48bb129f1)"),
    Release("xen-4.17", (4, 17, 3), (4, 18, 999), "INT $N resumed with rip += 2 (a934a600c4 never backported)"),
    Release("xen-4.20", (4, 19, 0), (4, 19, 4), "INT $N resumed with rip += 2 (a934a600c4 backported in 4.19.5)"),
    Release("xen", (4, 19, 5), (4, 19, 999), "a934a600c4 backported as 260740e1aa"),
    Release("xen-4.20", (4, 20, 0), (4, 20, 2), "INT $N resumed with rip += 2 (a934a600c4 backported in 4.20.3)"),
    Release("xen", (4, 20, 3), (4, 20, 999), "a934a600c4 backported as 45d18b05c0"),
    Release("xen-4.20", (4, 21, 0), (4, 21, 0), "INT $N resumed with rip += 2 (a934a600c4 backported in 4.21.1)"),
    Release("xen", (4, 21, 1), (4, 21, 999), "a934a600c4 backported as 805e2b8ada"),
    Release("xen", (4, 22, 0), (99, 0, 0), "master c447b7308b and 4.22.0"),
)

_VERSION = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?(\S*)$")


def parse_version(text: str) -> tuple[int, int, int]:
    """`4.17.7` -> (4, 17, 7); `4.23-unstable` -> (4, 23, 0); `4.21.0-rc3` -> (4, 21, 0)."""
    m = _VERSION.match(text.strip())
    if not m:
        raise InputError(text, "not a Xen version (expected MAJOR.MINOR[.PATCH][EXTRA], e.g. 4.17.7)")
    return int(m[1]), int(m[2]), int(m[3] or 0)


def release_of(version: str) -> Release:
    """The release range (and spec) that models Xen `version`."""
    v = parse_version(version)
    for r in RELEASES:
        if r.first <= v <= r.last:
            return r
    raise InputError(version, f"pvsmt has no model of Xen {version}: the release specs cover 4.17.0 and "
                              f"later (pass --spec to choose one anyway)")


def spec_for(version: str) -> str:
    """The name of the shipped spec that models Xen `version`."""
    return release_of(version).spec


def model_of(release: tuple[int, int, str]) -> str | None:
    """The spec modelling a tree's release as xen.source.tree_release reads it ((4, 20, ".0"),
    (4, 23, "-unstable")), or None for a release older than every spec (before 4.17)."""
    major, minor, extra = release
    try:
        return release_of(f"{major}.{minor}{extra}").spec
    except InputError:
        return None
