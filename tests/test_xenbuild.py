"""pvsmt.validate.xenbuild: building a Xen hypervisor from a source tree or archive.

The real build (master from ../shared/xen/xen-c447b7308b.tar.xz, about 5 minutes on 2 cores
the first time, cached in $PVSMT_XEN_CACHE or ~/.cache/pvsmt-xen after that) is skipped
when ../shared or the tools are absent, unless PVSMT_REQUIRE_XEN=1.  The cache, the lock
and the error paths are checked on a fake tree whose Makefile only pretends to build.
"""
from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import pytest

from pvsmt.errors import InputError
from pvsmt.validate import xenbuild
from pvsmt.validate.xenbuild import XenBuildError, build_key, build_xen, missing_tools, tree_release
from xen_builds import MASTER_ARCHIVE, SHARED_XEN, skip_or_fail, xen_binary

# A tree in Xen's shape whose make targets only pretend: defconfig writes a .config with the
# options pvsmt edits, the default target "links" xen (a copy of an ELF) after SLEEP
# seconds and counts its runs in $PVSMT_FAKE_COUNTER.
FAKE_MAKEFILE = """\
XEN_VERSION       = 4
XEN_SUBVERSION    = 99
XEN_EXTRAVERSION ?= -fake$(XEN_VENDORVERSION)
SLEEP ?= 0
all:
\t@echo build >> $(PVSMT_FAKE_COUNTER)
\t@sleep $(SLEEP)
\t@cp {elf} xen
defconfig:
\t@printf 'CONFIG_PV=y\\n# CONFIG_PV32 is not set\\nCONFIG_DEBUG=y\\nCONFIG_X=y\\n' > .config
olddefconfig:
\t@{olddefconfig}
distclean:
\t@rm -f .config
"""


def fake_tree(root: Path, olddefconfig: str = 'true', sleep: float = 0) -> Path:
    (root / 'xen').mkdir(parents=True)
    text = FAKE_MAKEFILE.format(elf=os.path.realpath('/bin/true'), olddefconfig=olddefconfig)
    (root / 'xen' / 'Makefile').write_text(text.replace('SLEEP ?= 0', f'SLEEP ?= {sleep}'))
    (root / 'xen' / 'main.c').write_text('int main;\n')
    return root


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv('PVSMT_XEN_CACHE', str(tmp_path / 'cache'))
    counter = tmp_path / 'counter'
    monkeypatch.setenv('PVSMT_FAKE_COUNTER', str(counter))
    return counter


def tools_or_skip() -> None:
    missing = missing_tools()
    if missing:
        skip_or_fail(f'cannot build Xen: missing {", ".join(missing)}')


def builds(counter: Path) -> int:
    return len(counter.read_text().split()) if counter.exists() else 0


# ---------------------------------------------------------------- no build needed

def test_tree_release(tmp_path):
    assert tree_release(fake_tree(tmp_path / 't')) == '4.99-fake'
    if not SHARED_XEN.is_dir():
        return
    assert tree_release(MASTER_ARCHIVE) == '4.23-unstable'
    assert tree_release(SHARED_XEN / 'xen-RELEASE-4.20.0.tar.xz') == '4.20.0'


def test_not_a_tree(tmp_path, cache):
    (tmp_path / 'empty').mkdir()
    with pytest.raises(XenBuildError, match='not a Xen source tree: no xen/Makefile'):
        build_xen(tmp_path / 'empty')
    with pytest.raises(InputError, match='no such file'):        # exit 2 in the CLI
        build_xen(tmp_path / 'missing')
    (tmp_path / 'notes.txt').write_text('x')
    with pytest.raises(XenBuildError, match='not a Xen source tree or archive'):
        build_xen(tmp_path / 'notes.txt')


def test_missing_tools(tmp_path, cache, monkeypatch):
    monkeypatch.setenv('PATH', str(tmp_path))                     # nothing on PATH
    with pytest.raises(XenBuildError, match=r'missing gcc, ld, make, bison, flex, python3'):
        build_xen(fake_tree(tmp_path / 't'))


def test_key_follows_contents(tmp_path):
    tree = fake_tree(tmp_path / 't')
    key = build_key(tree)
    (tree / 'xen' / 'main.o').write_text('an in-tree build product: not part of the key')
    assert build_key(tree) == key
    (tree / 'xen' / 'main.c').write_text('int main = 1;\n')
    assert build_key(tree) != key


# ---------------------------------------------------------------- fake builds

def test_fake_build_cached(tmp_path, cache):
    tools_or_skip()
    tree = fake_tree(tmp_path / 't')
    xen = build_xen(tree)
    assert xen == Path(os.environ['PVSMT_XEN_CACHE']) / build_key(tree) / 'xen'
    assert xen.read_bytes()[:4] == b'\x7fELF' and builds(cache) == 1
    config = (xen.parent / 'config').read_text()
    assert 'CONFIG_PV32=y' in config and '# CONFIG_DEBUG is not set' in config
    assert 'CONFIG_X=y' in config and 'CONFIG_DEBUG=y' not in config
    assert not list(xen.parent.glob('build-*')) and not (tree / 'xen' / '.config').exists()
    mtime = xen.stat().st_mtime_ns
    assert build_xen(tree) == xen and builds(cache) == 1 and xen.stat().st_mtime_ns == mtime
    (tree / 'xen' / 'main.c').write_text('int main = 2;\n')       # another tree: built again
    assert build_xen(tree) != xen and builds(cache) == 2


def test_fake_build_lock(tmp_path, cache):
    """Two builders of one tree (pytest-xdist workers): one builds, the other waits."""
    tools_or_skip()
    tree = fake_tree(tmp_path / 't', sleep=1)
    got, errors = [], []

    def one():
        try:
            got.append(build_xen(tree))
        except Exception as e:          # pragma: no cover - reported below
            errors.append(e)
    threads = [threading.Thread(target=one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(got)) == 1 and len(got) == 3
    assert builds(cache) == 1


def test_broken_tree(tmp_path, cache):
    tools_or_skip()
    tree = fake_tree(tmp_path / 't')
    mk = tree / 'xen' / 'Makefile'
    mk.write_text(mk.read_text().replace('\t@cp ', '\t@echo "arch/x86/traps.c:1: error: boom" >&2 && exit 1; cp '))
    with pytest.raises(XenBuildError) as e:
        build_xen(tree)
    msg = str(e.value)
    assert msg.startswith(f'{tree}: error: the Xen build failed: make -C ')
    assert re.search(r'\nmake: \*\*\* \[Makefile:\d+: all\] Error 1$', msg)
    assert 'arch/x86/traps.c:1: error: boom' in msg
    dest = Path(os.environ['PVSMT_XEN_CACHE']) / build_key(tree)
    assert not (dest / 'xen').exists() and (dest / 'build.log').exists()   # nothing cached
    assert not list(dest.glob('build-*'))


def test_config_not_as_asked(tmp_path, cache):
    """A tree whose Kconfig has no CONFIG_PV32 (olddefconfig drops it): said, not built."""
    tools_or_skip()
    tree = fake_tree(tmp_path / 't', olddefconfig="sed -i '/PV32/d' .config")
    with pytest.raises(XenBuildError, match=re.escape('CONFIG_PV32=n (asked for y)')):
        build_xen(tree)
    assert builds(cache) == 0


# ---------------------------------------------------------------- the real master build

def test_master_build_boots_pv32(monkeypatch):
    """master from the shared archive: built once (CONFIG_PV32=y, release), cached, boots PV32."""
    if not MASTER_ARCHIVE.is_file():
        skip_or_fail(f'no Xen master source: {MASTER_ARCHIVE} is absent')
    tools_or_skip()
    xen = build_xen(MASTER_ARCHIVE)
    config = (xen.parent / 'config').read_text()
    assert re.search(r'^CONFIG_PV32=y$', config, re.M) and re.search(r'^CONFIG_PV=y$', config, re.M)
    assert '# CONFIG_DEBUG is not set' in config
    assert tree_release(MASTER_ARCHIVE) == '4.23-unstable'
    # the second time: the cache, no make (a build would raise here)
    mtime = xen.stat().st_mtime_ns

    def no_build(*a, **k):
        raise AssertionError('rebuilt although cached')
    monkeypatch.setattr(xenbuild, '_build', no_build)
    assert build_xen(MASTER_ARCHIVE) == xen and xen.stat().st_mtime_ns == mtime
    if 'PVSMT_XEN_MASTER' not in os.environ:          # the tests' helper uses this build
        assert xen_binary('master') == xen
    from pvsmt.validate.xenrun import XenCase, available, run_xen_cases
    why = available(xen)
    if why:
        skip_or_fail(why)
    cases = [XenCase(1, 'pv32', 'user', 'compat', 'int_n', vector=0x21, tt=((0x21, 1, 3),)),
             XenCase(2, 'pv32', 'user', 'compat', 'int_n', vector=0x21),
             XenCase(3, 'pv32', 'kernel', 'compat', 'ud2')]
    obs, info = run_xen_cases(xen, 'pv32', cases)
    assert info['xen_version'] == '4.23-unstable' and info['boots'] == 1
    assert [(o.event, o.vector, o.error_code, o.rip) for o in obs] == [
        ('exception', 0x21, -1, 'next'), ('exception', 13, 0x21 * 8 + 2, 'insn'),
        ('exception', 6, -1, 'insn')]
