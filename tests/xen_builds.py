"""The real Xen binaries the tests boot, found or built once (and cached outside the clone).

    from xen_builds import xen_binary, REQUIRE
    xen = xen_binary('master')        # or 'debian-4.17'; skips (or fails in CI) if absent

* ``master``: $PVSMT_XEN_MASTER if set, else built by pvsmt.validate.xenbuild from
  ``../shared/xen/xen-c447b7308b.tar.xz`` (CONFIG_PV32=y, release build), cached in
  $PVSMT_XEN_CACHE or ~/.cache/pvsmt-xen; the first build takes about 5 minutes on 2
  cores, later runs and the other pytest-xdist worker use the cached one (a file lock).
* ``debian-4.17``: $PVSMT_XEN_417 or Debian's /boot/xen-4.17-amd64.gz (PV64 only: Debian
  builds it with CONFIG_PV32 off).

Absent sources or tools skip the test with the reason, unless PVSMT_REQUIRE_XEN=1 (CI),
where they fail it.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest

REQUIRE = os.environ.get('PVSMT_REQUIRE_XEN') == '1'
SHARED_XEN = Path(__file__).resolve().parents[2] / 'shared' / 'xen'
MASTER_ARCHIVE = SHARED_XEN / 'xen-c447b7308b.tar.xz'
DEBIAN_417 = Path('/boot/xen-4.17-amd64.gz')
NAMES = ('master', 'debian-4.17')


def skip_or_fail(why: str) -> None:
    if REQUIRE:
        pytest.fail(f'required here (PVSMT_REQUIRE_XEN=1): {why}')
    pytest.skip(why)


@functools.cache
def _master() -> Path | str:
    """The binary, or the reason there is none (cached per process: the build is slow)."""
    env = os.environ.get('PVSMT_XEN_MASTER')
    if env:
        return Path(env) if Path(env).is_file() else f'PVSMT_XEN_MASTER={env}: no such file'
    if not MASTER_ARCHIVE.is_file():
        return f'no Xen master source: {MASTER_ARCHIVE} is absent'
    from pvsmt.validate.xenbuild import XenBuildError, build_xen, missing_tools
    missing = missing_tools()
    if missing:
        return f'cannot build Xen: missing {", ".join(missing)}'
    try:
        return build_xen(MASTER_ARCHIVE)
    except XenBuildError as e:       # a real failure: never a skip
        pytest.fail(str(e))


def xen_path(name: str) -> Path | str:
    """The binary's path, or a one-line reason it is unavailable."""
    if name == 'master':
        return _master()
    if name == 'debian-4.17':
        path = Path(os.environ.get('PVSMT_XEN_417', DEBIAN_417))
        return path if path.is_file() else f'no Xen 4.17 at {path} (Debian: xen-hypervisor-4.17-amd64)'
    raise ValueError(f'unknown Xen {name!r}: one of {NAMES}')


def xen_binary(name: str) -> Path:
    """The binary for a test; skips it (fails it with PVSMT_REQUIRE_XEN=1) if unavailable."""
    got = xen_path(name)
    if isinstance(got, str):
        skip_or_fail(got)
    return got
