"""Build a Xen hypervisor from a source tree for the PV test guest (``--xen-tree``).

    xen = build_xen(Path('../shared/xen/xen-c447b7308b.tar.xz'))   # -> .../<key>/xen
    tree_release(Path('../shared/xen/xen-c447b7308b.tar.xz'))      # '4.23-unstable'

The source is a directory holding ``xen/Makefile`` (the top of a Xen checkout) or a
``.tar.xz``/``.tar.gz``/``.tar`` archive of one (``../shared/xen/*.tar.xz``: one top folder).
It is never built in place: the tree is copied (the archive unpacked) into the cache, so a
read-only source works and a checkout stays clean.  The configuration is Xen's defconfig
with ``CONFIG_EDITS`` applied, then ``make olddefconfig``: CONFIG_PV=y, CONFIG_PV32=y (the
PV32 guest needs it; it defaults off) and CONFIG_DEBUG off (a debug build fails one of
Xen's stub self-tests under QEMU TCG and then waits through a countdown).  Then
``make -j<cpus> PYTHON=python3`` in ``xen/``: on 2 cores about 4-5 minutes.

Cache: ``$PVSMT_XEN_CACHE`` or ``~/.cache/pvsmt-xen``, one directory per key (a hash of the
tree's contents or the archive's bytes, the configuration edits, the make command and the
gcc version) holding ``xen`` (the multiboot ELF QEMU boots), ``config`` (the .config used)
and ``build.log``; the build tree itself is removed.  ``<key>.lock`` (``flock``) makes a
second process wanting the same build (a pytest-xdist worker) wait for the first and then
use its result.  A build that fails leaves no result: the next call tries again.

Errors are ``XenBuildError`` (an ``InputError``: ``pvsmt`` prints it and exits 2): not a
Xen tree, missing tools (gcc, ld, make, bison, flex, python3), a configuration that does
not come out as asked, or make failing (the message ends with make's last lines).
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Callable

from ..errors import InputError

__all__ = ['build_xen', 'tree_release', 'cache_root', 'build_key', 'XenBuildError',
           'CONFIG_EDITS', 'TOOLS']

# (option, 'y' or None for "is not set"), applied to defconfig's .config
CONFIG_EDITS: tuple[tuple[str, str | None], ...] = (
    ('CONFIG_PV', 'y'), ('CONFIG_PV32', 'y'), ('CONFIG_DEBUG', None))
TOOLS = ('gcc', 'ld', 'make', 'bison', 'flex', 'python3')
MAKE_VARS = ('PYTHON=python3',)
BUILD_TIMEOUT = 3600.0       # seconds, per make invocation
LOG_TAIL = 25                # lines of make's output in the error message
ARCHIVE_SUFFIXES = ('.tar.xz', '.txz', '.tar.gz', '.tgz', '.tar.bz2', '.tar')
# left out of a directory tree's hash and copy: version control and earlier in-tree builds
SKIP_DIRS = {'.git', '.hg', '.svn'}
SKIP_FILE = re.compile(r'.*\.(o|a|d|cmd|su|gcno)$|^\.?.*\.o\.d$')

Progress = Callable[[str], None] | None


class XenBuildError(InputError):
    """The hypervisor could not be built from this tree: the message says why (exit 2)."""

    def __init__(self, tree: Path | str, message: str):
        super().__init__(str(tree), message)


def cache_root() -> Path:
    env = os.environ.get('PVSMT_XEN_CACHE')
    return Path(env).expanduser() if env else Path.home() / '.cache' / 'pvsmt-xen'


def missing_tools() -> list[str]:
    return [t for t in TOOLS if shutil.which(t) is None]


def is_archive(path: Path) -> bool:
    return path.is_file() and path.name.endswith(ARCHIVE_SUFFIXES)


# ---------------------------------------------------------------- the release

def tree_release(tree: Path | str) -> str:
    """The release a tree (or archive) says it is in xen/Makefile: '4.23-unstable', '4.20.0'."""
    from ..xen.source import release_text, tree_release as _tree_release
    tree = Path(tree)
    if not is_archive(tree):
        return release_text(_tree_release(tree))
    with tempfile.TemporaryDirectory(prefix='pvsmt-xen-release-') as tmp:
        with tarfile.open(tree) as tar:
            for m in tar:
                parts = m.name.lstrip('./').split('/')
                if m.isfile() and parts[-2:] == ['xen', 'Makefile'] and len(parts) <= 3:
                    dest = Path(tmp) / 'xen'
                    dest.mkdir()
                    (dest / 'Makefile').write_bytes(tar.extractfile(m).read())
                    return release_text(_tree_release(Path(tmp)))
    raise XenBuildError(tree, 'no xen/Makefile in the archive: not a Xen source tree')


# ---------------------------------------------------------------- the key

def _skipped(name: str) -> bool:
    return bool(SKIP_FILE.match(name))


def _tree_files(top: Path) -> list[Path]:
    out = []
    for root, dirs, files in os.walk(top):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        links = [d for d in dirs if os.path.islink(os.path.join(root, d))]   # not followed
        dirs[:] = [d for d in dirs if d not in links]
        out.extend(Path(root) / f for f in sorted(files + links) if not _skipped(f))
    return out


def _content_hash(source: Path) -> str:
    h = hashlib.sha256()
    if is_archive(source):
        h.update(b'archive\0')
        with open(source, 'rb') as f:
            for chunk in iter(lambda: f.read(1 << 20), b''):
                h.update(chunk)
        return h.hexdigest()
    h.update(b'tree\0')
    for path in _tree_files(source):
        rel = path.relative_to(source).as_posix().encode()
        if path.is_symlink():
            h.update(b'L' + rel + b'\0' + os.readlink(path).encode() + b'\0')
        else:
            h.update(b'F' + rel + b'\0' + path.read_bytes() + b'\0')
    return h.hexdigest()


def _gcc_version() -> str:
    try:
        p = subprocess.run(['gcc', '--version'], capture_output=True, text=True, timeout=60)
        return p.stdout.splitlines()[0] if p.stdout else ''
    except (OSError, subprocess.TimeoutExpired):
        return ''


def build_key(source: Path | str) -> str:
    """The cache key of a build: the source's contents, the configuration edits, make's
    variables and the compiler."""
    source = Path(source)
    h = hashlib.sha256()
    h.update(_content_hash(source).encode() + b'\0')
    h.update(repr(CONFIG_EDITS).encode() + b'\0' + ' '.join(MAKE_VARS).encode() + b'\0')
    h.update(_gcc_version().encode())
    return h.hexdigest()[:16]


# ---------------------------------------------------------------- the build

def _check_source(source: Path) -> None:
    if not source.exists():
        raise XenBuildError(source, 'no such file or directory')
    if source.is_dir():
        if not (source / 'xen' / 'Makefile').is_file():
            raise XenBuildError(source, 'not a Xen source tree: no xen/Makefile here')
    elif not is_archive(source):
        raise XenBuildError(source, f'not a Xen source tree or archive ({", ".join(ARCHIVE_SUFFIXES)})')


def _copy_source(source: Path, work: Path) -> Path:
    """A writable copy of the tree in work; returns its top (the folder holding xen/)."""
    if source.is_dir():
        top = work / 'src'
        shutil.copytree(source, top, symlinks=True,
                        ignore=lambda d, names: [n for n in names if n in SKIP_DIRS or _skipped(n)])
        return top
    try:
        with tarfile.open(source) as tar:
            # the 'data' filter (no absolute paths, no links out) where Python has it (3.11.4+)
            tar.extractall(work / 'src', **({'filter': 'data'} if hasattr(tarfile, 'data_filter') else {}))
    except (tarfile.TarError, OSError, EOFError) as e:
        raise XenBuildError(source, f'cannot unpack: {e}') from None
    src = work / 'src'
    for top in [src, *sorted(p for p in src.iterdir() if p.is_dir())]:
        if (top / 'xen' / 'Makefile').is_file():
            return top
    raise XenBuildError(source, 'no xen/Makefile in the archive: not a Xen source tree')


def _tail(text: str, n: int = LOG_TAIL) -> str:
    lines = [ln for ln in text.splitlines()
             if ln.strip() and not re.match(r'make(\[\d+\])?: (Entering|Leaving) directory', ln)]
    return '\n'.join(lines[-n:])


def _make(source: Path, xen_dir: Path, log: Path, *targets: str, jobs: int = 1) -> None:
    cmd = ['make', '-C', str(xen_dir), f'-j{jobs}', *MAKE_VARS, *targets]
    env = {k: v for k, v in os.environ.items() if k not in ('MAKEFLAGS', 'MFLAGS', 'MAKELEVEL')}
    env['LC_ALL'] = 'C'
    with open(log, 'a') as f:
        f.write(f'$ {" ".join(cmd)}\n')
        f.flush()
        try:
            p = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env,
                               stdin=subprocess.DEVNULL, timeout=BUILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise XenBuildError(source, f'{" ".join(cmd)}: no result after {BUILD_TIMEOUT:.0f} s '
                                        f'(log: {log})') from None
        except OSError as e:
            raise XenBuildError(source, f'{" ".join(cmd)}: {e}') from None
    if p.returncode != 0:
        raise XenBuildError(source, f'the Xen build failed: {" ".join(cmd)} exited with '
                                    f'{p.returncode} (log: {log}); its last lines:\n'
                                    f'{_tail(log.read_text(errors="replace"))}')


def _edit_config(config: Path) -> None:
    names = {name for name, _ in CONFIG_EDITS}
    keep = [ln for ln in config.read_text().splitlines()
            if not (m := re.match(r'(?:# )?(CONFIG_\w+)(?:=| is not set)', ln)) or m.group(1) not in names]
    keep += [f'{n}={v}' if v else f'# {n} is not set' for n, v in CONFIG_EDITS]
    config.write_text('\n'.join(keep) + '\n')


def _check_config(source: Path, config: Path) -> None:
    text = config.read_text()
    wrong = []
    for name, value in CONFIG_EDITS:
        got = re.search(rf'^{name}=(\S+)', text, re.M)
        got_v = got.group(1) if got else None
        if got_v != value:
            wrong.append(f'{name}={got_v or "n"} (asked for {value or "n"})')
    if wrong:
        raise XenBuildError(source, 'the configuration does not come out as asked after '
                                    f'make olddefconfig: {", ".join(wrong)} ({config})')


def _jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:   # pragma: no cover
        return os.cpu_count() or 1


def _build(source: Path, dest: Path, progress: Progress) -> None:
    """Build into dest/xen (with dest/config and dest/build.log)."""
    dest.mkdir(parents=True, exist_ok=True)
    for stale in dest.glob('build-*'):        # left by a build that was killed (we hold the lock)
        shutil.rmtree(stale, ignore_errors=True)
    log = dest / 'build.log'
    log.write_text('')
    work = Path(tempfile.mkdtemp(prefix='build-', dir=dest))
    try:
        if progress:
            progress(f'copying {source} into {work}')
        top = _copy_source(source, work)
        xen_dir = top / 'xen'
        if (xen_dir / '.config').exists():      # a tree configured in place: start clean
            _make(source, xen_dir, log, 'distclean')
        _make(source, xen_dir, log, 'defconfig')
        _edit_config(xen_dir / '.config')
        _make(source, xen_dir, log, 'olddefconfig')
        _check_config(source, xen_dir / '.config')
        jobs = _jobs()
        if progress:
            try:
                release = tree_release(top)
            except InputError:
                release = '(release unknown)'
            progress(f'building Xen {release} (make -j{jobs}, about 5 minutes on 2 cores; '
                     f'log: {log})')
        start = time.monotonic()
        _make(source, xen_dir, log, jobs=jobs)
        elf = xen_dir / 'xen'
        if not elf.is_file() or elf.read_bytes()[:4] != b'\x7fELF':
            raise XenBuildError(source, f'make succeeded but left no xen/xen ELF (log: {log})')
        shutil.copyfile(xen_dir / '.config', dest / 'config')
        tmp = dest / f'xen.tmp{os.getpid()}'
        shutil.copyfile(elf, tmp)
        tmp.replace(dest / 'xen')      # the result appears whole or not at all
        with open(log, 'a') as f:
            f.write(f'# built in {time.monotonic() - start:.0f} s with -j{jobs}\n')
    finally:
        shutil.rmtree(work, ignore_errors=True)


def build_xen(tree: Path | str, *, progress: Progress = None) -> Path:
    """The hypervisor (multiboot ELF ``xen``) built from a Xen source tree or archive, cached.

    Raises XenBuildError (exit 2 in the CLI) when the source is not a Xen tree, a tool is
    missing or the build fails."""
    source = Path(tree).expanduser().resolve()
    _check_source(source)
    missing = missing_tools()
    if missing:
        raise XenBuildError(source, f'cannot build Xen: missing {", ".join(missing)} '
                                    '(Debian: apt-get install gcc binutils make bison flex python3)')
    dest = cache_root() / build_key(source)
    result = dest / 'xen'
    if result.is_file():
        return result
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest.parent / f'{dest.name}.lock', 'w') as lock:
        if progress:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                progress(f'waiting for another process building {dest}')
                fcntl.flock(lock, fcntl.LOCK_EX)
        else:
            fcntl.flock(lock, fcntl.LOCK_EX)
        if not result.is_file():      # built by the lock's previous holder?
            _build(source, dest, progress)
    return result
