"""Run PV test-guest cases under real Xen (as dom0) in QEMU/TCG: the model-of-Xen check.

    obs, info = run_xen_cases(Path('/boot/xen-4.17-amd64.gz'), 'pv64', cases)
    # info: {'xen_version', 'xen_banner', 'emulator_version', 'boots', 'guest',
    #        'xen_version_hypercall', 'cases_per_boot', 'seconds'}

The guest (``xenguest/``) is built once per guest kind with gcc/ld and cached like the
bare-metal kernel (``$PVSMT_VALIDATE_CACHE`` or ``~/.cache/pvsmt-validate``); a gzipped
Xen is decompressed into the same cache.  One boot runs up to ``max_cases_per_boot``
cases (the case table is dom0's initrd module); a domain crash ends the boot, the case
whose line never came gets ``domain_crash`` and the next boot resumes after it.
"""
from __future__ import annotations

import gzip
import hashlib
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from .build import BuildError, cache_root, run_tool
from .drivers import stop
from .xencases import (GUESTS, XenCase, XenObservation, encode_table, guest_line,
                       parse_case_line, validate)

__all__ = ['XenCase', 'XenObservation', 'run_xen_cases', 'available', 'build_guest',
           'BuildError', 'EmulatorError']

GUEST_DIR = Path(__file__).with_name('xenguest')
SOURCES = ('layout.h', 'entry.S', 'guest.c', 'guest.ld')
CFLAGS = ('-ffreestanding', '-fno-pic', '-fno-pie', '-mno-red-zone', '-mgeneral-regs-only',
          '-fno-stack-protector', '-fno-asynchronous-unwind-tables', '-fno-builtin',
          '-fno-tree-loop-distribute-patterns', '-O2', '-Wall', '-Wextra')
LDFLAGS = ('-nostdlib', '-static', '-no-pie', '-z', 'noexecstack', '--no-warn-rwx-segments')
ARCH = {'pv64': ('-m64', 'elf_x86_64'), 'pv32': ('-m32', 'elf_i386')}
TOOLS = ('gcc', 'ld')

QEMU = 'qemu-system-x86_64'
QEMU_ARGS = ('-machine', 'q35,accel=tcg', '-cpu', 'max,vendor=GenuineIntel,-svm', '-m', '512',
             '-nodefaults', '-display', 'none', '-no-reboot')
#: the -cpu of QEMU_ARGS per CPU vendor: Xen boots and runs PV64 and PV32 on either under TCG
QEMU_CPUS = {'intel': 'max,vendor=GenuineIntel,-svm', 'amd': 'max,vendor=AuthenticAMD,-svm'}
XEN_CMDLINE = ('console=com1 com1=115200,8n1 loglvl=all guest_loglvl=all noreboot '
               'dom0_mem=64M')

DEFAULT_TIMEOUT = 1800.0     # whole run, seconds
DEFAULT_IDLE = 20.0          # one boot with no new console line for this long = hung
DEFAULT_PER_BOOT = 10000     # cases per boot (about 1,500-2,000 cases/s after the boot)

# Xen console lines that mean dom0 is gone or Xen itself stopped
CRASH_MARKS = ('crashed on cpu#', 'Hardware Dom0 crashed', 'domain_crash',
               'Panic on CPU', 'FATAL TRAP', 'Hardware Dom0 halted',
               'Hardware Dom0 shutdown')
FINAL_MARKS = ("'noreboot' set - not rebooting", 'Manual reset required',
               'Reboot in five seconds', 'rebooting machine')
BANNER_RE = re.compile(r'Xen version (\S+)')


class EmulatorError(RuntimeError):
    """Xen or the guest could not run at all (no start line...)."""


def missing_tools() -> list[str]:
    return [t for t in TOOLS if shutil.which(t) is None]


def available(xen: Path | str) -> str | None:
    """None if QEMU, the toolchain and the Xen binary are usable, else a one-line reason."""
    if shutil.which(QEMU) is None:
        return f'{QEMU} not installed'
    missing = missing_tools()
    if missing:
        return f'missing build tools: {", ".join(missing)}'
    path = Path(xen)
    if not path.is_file():
        return f'no Xen binary at {path}'
    try:
        with open(path, 'rb') as f:
            f.read(4)
    except OSError as e:
        return f'cannot read {path}: {e}'
    return None


def _run(cmd: list[str], cwd: Path) -> str:
    return run_tool(cmd, cwd, 'guest')


def _source_key() -> str:
    h = hashlib.sha256()
    for name in SOURCES:
        h.update(name.encode() + b'\0' + (GUEST_DIR / name).read_bytes() + b'\0')
    h.update(' '.join(CFLAGS + LDFLAGS).encode())
    h.update(_run(['gcc', '--version'], Path.cwd()).splitlines()[0].encode())
    return h.hexdigest()[:16]


def build_guest(guest: str) -> Path:
    """Path of the guest ELF (pv64: ELF64, pv32: ELF32 PAE), building both if not cached."""
    if guest not in GUESTS:
        raise ValueError(f'guest must be one of {GUESTS}')
    missing = missing_tools()
    if missing:
        raise BuildError(f'guest build: missing tools: {", ".join(missing)}')
    dest = cache_root() / f'xenguest-{_source_key()}'
    elf = dest / f'{guest}.elf'
    if elf.exists():
        return elf
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix='xenguest-', dir=dest.parent))
    try:
        for kind, (mflag, emul) in ARCH.items():
            objs = []
            for src in ('entry.S', 'guest.c'):
                obj = tmp / f'{kind}-{src.rsplit(".", 1)[0]}.o'
                _run(['gcc', mflag, *CFLAGS, '-I', str(GUEST_DIR), '-c', str(GUEST_DIR / src),
                      '-o', str(obj)], tmp)
                objs.append(str(obj))
            _run(['ld', '-m', emul, *LDFLAGS, '-T', str(GUEST_DIR / 'guest.ld'),
                  '-o', f'{kind}.elf', *objs], tmp)
        try:
            tmp.rename(dest)
        except OSError:          # another process built it meanwhile
            if not elf.exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return elf


def xen_image(xen: Path) -> Path:
    """The multiboot ELF QEMU can load: xen itself, or its gunzipped copy in the cache."""
    data = xen.read_bytes()
    if data[:2] != b'\x1f\x8b':
        return xen
    key = hashlib.sha256(data).hexdigest()[:16]
    out = cache_root() / f'xen-{key}.elf'
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(f'.tmp{time.monotonic_ns()}')
        tmp.write_bytes(gzip.decompress(data))
        tmp.replace(out)
    return out


def emulator_version() -> str:
    try:
        p = subprocess.run([QEMU, '--version'], capture_output=True, text=True, timeout=30)
        return p.stdout.splitlines()[0].strip()
    except (OSError, subprocess.TimeoutExpired, IndexError) as e:
        return f'unknown ({e})'


class Boot:
    """One boot's console: the guest lines, Xen's banner, how it ended."""

    def __init__(self):
        self.lines: list[str] = []        # guest lines from PVSMT START on
        self.console: list[str] = []      # every console line
        self.banner = ''
        self.status = ''   # 'end' | 'crash' | 'panic' | 'exit' | 'idle' | 'deadline'
        self.detail = ''
        self.crash_at = -1                # index in console of the first crash mark

    def line(self, raw: str) -> bool:
        """Take one console line; True once the boot is over."""
        self.console.append(raw)
        if not self.banner:
            m = BANNER_RE.search(raw)
            if m:
                self.banner = raw.split(') ', 1)[-1] if raw.startswith('(XEN)') else raw
        g = guest_line(raw)
        if g is not None:
            self.lines.append(g)
            if g.startswith('PVSMT END'):
                self.status = 'end'
                return True
            if g.startswith('PVSMT PANIC'):
                self.status, self.detail = 'panic', g
                return True
            return False
        if self.crash_at < 0 and any(m in raw for m in CRASH_MARKS):
            self.crash_at = len(self.console) - 1
        if self.crash_at >= 0 and any(m in raw for m in FINAL_MARKS):
            self.status = 'crash'
            return True
        return False

    def crash_detail(self) -> str:
        if self.crash_at < 0:
            return ''
        keep = [ln.replace('(XEN) ', '').strip() for ln in self.console[self.crash_at:]]
        useful = [ln for ln in keep if ln and not ln.startswith(('Xen call trace',
                  'Xen stack', '[<')) and not re.fullmatch(r'[0-9a-f ]+', ln)]
        return ' | '.join(useful[:8])[:600]


def qemu_args(vendor: str = 'intel') -> list[str]:
    """QEMU_ARGS with the -cpu of `vendor` (QEMU_CPUS)."""
    if vendor not in QEMU_CPUS:
        raise ValueError(f'vendor must be one of {tuple(QEMU_CPUS)}')
    args = list(QEMU_ARGS)
    args[args.index('-cpu') + 1] = QEMU_CPUS[vendor]
    return args


def boot(xen_elf: Path, guest_elf: Path, table: Path, work: Path, idle: float,
         deadline: float, vendor: str = 'intel') -> Boot:
    serial = work / 'console.log'
    serial.write_bytes(b'')
    cmd = [QEMU, *qemu_args(vendor), '-serial', f'file:{serial}', '-kernel', str(xen_elf),
           '-initrd', f'{guest_elf},{table}', '-append', XEN_CMDLINE]
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
    except OSError as e:
        raise EmulatorError(f'cannot start {QEMU}: {e}') from e
    b, pos, partial, last = Boot(), 0, b'', time.monotonic()
    try:
        while True:
            with open(serial, 'rb') as f:
                f.seek(pos)
                data = f.read()
            pos += len(data)
            partial += data
            *complete, partial = partial.split(b'\n')
            done = False
            for raw in complete:
                if b.line(raw.decode('latin-1').rstrip('\r')):
                    done = True
                    break
            if done:
                break
            now = time.monotonic()
            if complete:
                last = now
            if proc.poll() is not None:
                b.status, b.detail = 'exit', f'{QEMU} exit code {proc.returncode}'
                out = proc.stdout.read().decode('latin-1', 'replace').strip() if proc.stdout else ''
                if out:
                    b.detail += ': ' + out[-300:]
                break
            if now - last > (1.0 if b.crash_at >= 0 else idle):
                b.status = 'crash' if b.crash_at >= 0 else 'idle'
                b.detail = f'no console output for {now - last:.0f}s'
                break
            if now > deadline:
                b.status, b.detail = 'deadline', 'time budget exhausted'
                break
            time.sleep(0.01)
    finally:
        stop(proc)
        if proc.stdout:
            proc.stdout.close()
    return b


def _tail(b: Boot, n: int = 15) -> str:
    return '\n'.join(b.console[-n:])


def _collect(batch: list[XenCase], b: Boot, info: dict) -> list[XenObservation]:
    if not b.lines or not b.lines[0].startswith('PVSMT START'):
        raise EmulatorError(f'the guest never started ({b.status}: '
                            f'{b.detail or b.crash_detail()}); last '
                            f'console lines:\n{_tail(b)}')
    f = b.lines[0].split()
    if len(f) < 5 or f[2] != info['guest'] or int(f[3], 16) != len(batch):
        raise EmulatorError(f'unexpected start line {b.lines[0]!r}')
    info['xen_version_hypercall'] = f[4]
    out = []
    for line in b.lines[1:]:
        if not line.startswith('PVSMT C '):
            continue
        if len(out) >= len(batch):
            raise EmulatorError(f'more case lines than cases: {line!r}')
        try:
            out.append(parse_case_line(line, batch[len(out)]))
        except ValueError as e:
            raise EmulatorError(str(e)) from e
    return out


def _lost(case: XenCase, b: Boot) -> XenObservation:
    if b.status == 'crash':
        return XenObservation(case.id, 'domain_crash', detail=b.crash_detail())
    if b.status in ('idle', 'deadline'):
        return XenObservation(case.id, 'timeout', detail=f'{b.status}: {b.detail}')
    return XenObservation(case.id, 'error', detail=f'{b.status}: {b.detail}'.strip())


def run_xen_cases(xen: Path | str, guest: str, cases: list[XenCase], *,
                  timeout: float = DEFAULT_TIMEOUT, idle_timeout: float = DEFAULT_IDLE,
                  max_cases_per_boot: int = DEFAULT_PER_BOOT, vendor: str = 'intel',
                  ) -> tuple[list[XenObservation], dict]:
    """Boot Xen with the guest as dom0 as often as needed to run all cases; one
    XenObservation per case, in order, and info (module docstring).  `vendor` picks
    the emulated CPU's CPUID vendor (QEMU_CPUS)."""
    xen = Path(xen)
    reason = available(xen)
    if reason:
        raise EmulatorError(reason)
    if guest not in GUESTS:
        raise ValueError(f'guest must be one of {GUESTS}')
    qemu_args(vendor)
    for c in cases:
        validate(c)
        if c.guest != guest:
            raise ValueError(f'case {c.id}: guest {c.guest!r} in a {guest} run')
    guest_elf = build_guest(guest)
    xen_elf = xen_image(xen)
    info = {'xen_version': '', 'xen_banner': '', 'emulator_version': emulator_version(),
            'boots': 0, 'guest': guest, 'xen_version_hypercall': '', 'boot_seconds': [],
            'vendor': vendor, 'cpu': QEMU_CPUS[vendor]}
    start = time.monotonic()
    deadline = start + timeout
    observations: list[XenObservation] = []
    with tempfile.TemporaryDirectory(prefix='pvsmt-xen-') as tmp:
        work = Path(tmp)
        while len(observations) < len(cases):
            if time.monotonic() > deadline:
                observations += [XenObservation(c.id, 'timeout', detail='run time budget '
                                                'exhausted') for c in cases[len(observations):]]
                break
            batch = cases[len(observations):len(observations) + max_cases_per_boot]
            table = work / 'cases.bin'
            table.write_bytes(encode_table(guest, batch))
            t0 = time.monotonic()
            b = boot(xen_elf, guest_elf, table, work, idle_timeout, deadline, vendor)
            info['boot_seconds'].append(round(time.monotonic() - t0, 3))
            info['boots'] += 1
            if b.banner and not info['xen_banner']:
                info['xen_banner'] = b.banner
                info['xen_version'] = BANNER_RE.search(b.banner).group(1)
            done = _collect(batch, b, info)
            observations += done
            if b.status == 'end':
                if len(done) != len(batch):
                    raise EmulatorError(f'boot ended after {len(done)} of {len(batch)} cases')
            elif len(done) < len(batch):
                observations.append(_lost(batch[len(done)], b))
    info['seconds'] = round(time.monotonic() - start, 3)
    return observations, info
