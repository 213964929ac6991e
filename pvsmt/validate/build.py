"""Build the validation kernel once (gcc, ld, objcopy) and cache it; compose disk images.

The cache directory is ``$PVSMT_VALIDATE_CACHE`` or ``~/.cache/pvsmt-validate``; each
build lives in a subdirectory named by a hash of the kernel sources, the flags and the
compiler's version, so an edit to a source file rebuilds and nothing else does.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

from .cases import Case, encode_table

KERNEL_DIR = Path(__file__).with_name('kernel')
SOURCES = ('layout.h', 'boot.S', 'entry.S', 'kernel.c', 'kernel.ld')
OBJECTS = ('boot.S', 'entry.S', 'kernel.c')
CFLAGS = ('-m64', '-ffreestanding', '-fno-pic', '-fno-pie', '-mno-red-zone',
          '-mgeneral-regs-only', '-fno-stack-protector', '-fno-asynchronous-unwind-tables',
          '-fno-builtin', '-O2', '-Wall', '-Wextra')
LDFLAGS = ('-m', 'elf_x86_64', '-nostdlib', '-static', '-no-pie', '-z', 'noexecstack')
TOOLS = ('gcc', 'ld', 'objcopy')

BOOT_ADDR = 0x7c00
LOAD_LIMIT = 0x9f000          # the image must end below the EBDA
HDR_SECTORS, HDR_TABLE = 4, 8  # boot-sector header offsets (layout.h)
CYLINDER = 16 * 63 * 512       # Bochs flat disks: whole cylinders of 16 heads x 63 sectors


class BuildError(RuntimeError):
    """The kernel could not be built; the message has the command and its output."""


def missing_tools() -> list[str]:
    return [t for t in TOOLS if shutil.which(t) is None]


def cache_root() -> Path:
    env = os.environ.get('PVSMT_VALIDATE_CACHE')
    return Path(env) if env else Path.home() / '.cache' / 'pvsmt-validate'


def _source_key() -> str:
    h = hashlib.sha256()
    for name in SOURCES:
        h.update(name.encode() + b'\0' + (KERNEL_DIR / name).read_bytes() + b'\0')
    h.update(' '.join(CFLAGS + LDFLAGS).encode())
    h.update(run_tool(['gcc', '--version'], Path.cwd()).splitlines()[0].encode())
    return h.hexdigest()[:16]


def run_tool(cmd: list[str], cwd: Path, what: str = 'kernel') -> str:
    """Run one toolchain step of the `what` build (the test kernel, the PV guest); its stdout,
    or BuildError with the command and its output."""
    try:
        p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BuildError(f'{what} build: {" ".join(cmd)}: {e}') from e
    if p.returncode != 0:
        raise BuildError(f'{what} build failed: {" ".join(cmd)}\n{p.stdout}{p.stderr}')
    return p.stdout



def _compile(out: Path) -> None:
    objs = []
    for src in OBJECTS:
        obj = out / (src.rsplit('.', 1)[0] + '.o')
        run_tool(['gcc', *CFLAGS, '-I', str(KERNEL_DIR), '-c', str(KERNEL_DIR / src),
              '-o', str(obj)], out)
        objs.append(str(obj))
    run_tool(['ld', *LDFLAGS, '-T', str(KERNEL_DIR / 'kernel.ld'), '-o', 'kernel.elf', *objs], out)
    run_tool(['objcopy', '-O', 'binary', 'kernel.elf', 'kernel.bin'], out)
    size = (out / 'kernel.bin').stat().st_size
    if size < 1024 or (out / 'kernel.bin').read_bytes()[510:512] != b'\x55\xaa':
        raise BuildError(f'kernel build: kernel.bin ({size} bytes) has no boot signature')


def build_kernel() -> Path:
    """Path of the flat kernel image (boot sector first), building it if not cached."""
    missing = missing_tools()
    if missing:
        raise BuildError(f'kernel build: missing tools: {", ".join(missing)}')
    dest = cache_root() / _source_key()
    binary = dest / 'kernel.bin'
    if binary.exists():
        return binary
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix='build-', dir=dest.parent))
    try:
        _compile(tmp)
        try:
            tmp.rename(dest)
        except OSError:          # another process built it meanwhile
            if not binary.exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return binary


def _pad(data: bytes, unit: int) -> bytes:
    return data + b'\0' * (-len(data) % unit)


def table_capacity(kernel: bytes) -> int:
    """Bytes left for the case table between the kernel and LOAD_LIMIT."""
    return LOAD_LIMIT - BOOT_ADDR - len(_pad(kernel, 512))


def make_image(kernel: bytes, cases: list[Case]) -> bytes:
    """Boot sector + kernel + case table, header patched, padded to whole cylinders."""
    kernel = _pad(kernel, 512)
    table = encode_table(cases)
    if len(table) > table_capacity(kernel):
        raise ValueError(f'case table of {len(table)} bytes does not fit below {LOAD_LIMIT:#x}')
    image = bytearray(kernel + _pad(table, 512))
    struct.pack_into('<H', image, HDR_SECTORS, len(image) // 512 - 1)
    struct.pack_into('<I', image, HDR_TABLE, BOOT_ADDR + len(kernel))
    return _pad(bytes(image), CYLINDER)
