"""Drive one boot of QEMU (TCG) or Bochs on a disk image and collect its serial lines.

QEMU: ``-drive file=IMG,format=raw``, serial to a file, ``-no-reboot`` (a triple fault
ends the process), ``isa-debug-exit`` at port 0xf4 (the kernel's exit).

Bochs 2.7 (Debian): no ``nogui`` display and the internal debugger is compiled in, so it
runs with ``display_library: term`` on a pseudo-terminal and a debugger command file
``c`` (continue).  The kernel ends the run through the Bochs shutdown port (0x8900,
"Shutdown" -> a panic with ``panic: action=fatal`` -> exit).  A triple fault resets
the machine (``reset_on_triple_fault=1``): the BIOS boots the image again and a second
``PVSMT START`` line tells the runner, which then kills the process.
"""
from __future__ import annotations

import fcntl
import os
import pty
import shutil
import struct
import subprocess
import termios
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .build import CYLINDER

TEMPLATES = Path(__file__).parent

QEMU = 'qemu-system-x86_64'
QEMU_MODELS = {'intel': 'Westmere', 'amd': 'Opteron_G2'}
BOCHS = 'bochs'
BOCHS_MODELS = {'intel': 'corei7_skylake_x', 'amd': 'ryzen'}
BOCHS_FILES = ('/usr/share/bochs/BIOS-bochs-latest', '/usr/share/vgabios/vgabios.bin',
               '/usr/lib/x86_64-linux-gnu/bochs/plugins/libbx_term_gui.so')
VENDORS = {'intel': 'GenuineIntel', 'amd': 'AuthenticAMD'}


@dataclass
class BootResult:
    lines: list[str] = field(default_factory=list)   # serial lines from PVSMT START on
    status: str = ''       # 'end' | 'exit' | 'reset' | 'panic' | 'idle' | 'deadline'
    detail: str = ''       # process exit code, log tail, ...


def _version_line(cmd: list[str], marker: str) -> str:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f'unknown ({e})'
    for line in (p.stdout + p.stderr).splitlines():
        if marker in line:
            return line.strip()
    return 'unknown'


def _deb_version(package: str) -> str:
    if shutil.which('dpkg-query') is None:
        return ''
    try:
        p = subprocess.run(['dpkg-query', '-W', '-f', '${Version}', package],
                           capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ''
    return f' (Debian {p.stdout.strip()})' if p.returncode == 0 and p.stdout.strip() else ''


class SerialWatch:
    """Follow the serial output file; decide when a boot is over."""

    def __init__(self, path: Path):
        self.path, self.pos, self.partial = path, 0, b''
        self.result = BootResult()
        self.started = False

    def poll(self) -> bool:
        """Read new output; True once the boot reached a final line."""
        try:
            with open(self.path, 'rb') as f:
                f.seek(self.pos)
                data = f.read()
        except FileNotFoundError:
            return False
        self.pos += len(data)
        self.partial += data
        *complete, self.partial = self.partial.split(b'\n')
        return any(self._line(raw.decode('latin-1').strip()) for raw in complete)

    def _line(self, line: str) -> bool:
        r = self.result
        if line.startswith('PVSMT START'):
            if self.started:
                r.status = 'reset'
                return True
            self.started = True
        if not self.started:
            return False
        r.lines.append(line)
        if line == 'PVSMT END':
            r.status = 'end'
        elif line.startswith('PVSMT PANIC'):
            r.status, r.detail = 'panic', line
        return bool(r.status)


def watch(proc: subprocess.Popen, serial: Path, idle: float, deadline: float) -> BootResult:
    """Poll until the end marker, a reset, a panic, process exit, idleness or deadline."""
    w, last = SerialWatch(serial), time.monotonic()
    while True:
        seen = len(w.result.lines)
        if w.poll():
            break
        now = time.monotonic()
        if len(w.result.lines) != seen:
            last = now
        if proc.poll() is not None:
            if not w.poll():
                w.result.status = 'exit'
                w.result.detail = f'exit code {proc.returncode}'
            break
        if now - last > idle:
            w.result.status, w.result.detail = 'idle', f'no serial output for {idle:.0f}s'
            break
        if now > deadline:
            w.result.status, w.result.detail = 'deadline', 'time budget exhausted'
            break
        time.sleep(0.01)
    stop(proc)
    return w.result


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


class Qemu:
    name = 'qemu'

    def __init__(self, vendor: str):
        self.vendor, self.model = vendor, QEMU_MODELS[vendor]

    @staticmethod
    def available() -> str | None:
        return None if shutil.which(QEMU) else f'{QEMU} not installed (apt-get install qemu-system-x86)'

    @staticmethod
    def version() -> str:
        return _version_line([QEMU, '--version'], 'version')

    def boot(self, image: Path, work: Path, idle: float, deadline: float) -> BootResult:
        serial = work / 'serial.txt'
        serial.unlink(missing_ok=True)
        cmd = [QEMU, '-machine', 'pc,accel=tcg', '-cpu', self.model, '-m', '64',
               '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
               '-monitor', 'none', '-drive', f'file={image},format=raw,if=ide',
               '-serial', f'file:{serial}',
               '-device', 'isa-debug-exit,iobase=0xf4,iosize=0x04']
        with open(work / 'qemu.log', 'wb') as log:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    cwd=work)
            result = watch(proc, serial, idle, deadline)
        if result.status not in ('end',):
            tail = (work / 'qemu.log').read_text(errors='replace').strip()[-500:]
            result.detail = f'{result.detail}; {tail}' if tail else result.detail
        return result


class Bochs:
    name = 'bochs'

    def __init__(self, vendor: str):
        self.vendor, self.model = vendor, BOCHS_MODELS[vendor]

    @staticmethod
    def available() -> str | None:
        if shutil.which(BOCHS) is None:
            return 'bochs not installed (apt-get install bochs bochsbios vgabios bochs-term)'
        missing = [f for f in BOCHS_FILES if not os.path.exists(f)]
        if missing:
            return f'bochs files missing: {", ".join(missing)} (bochsbios, vgabios, bochs-term)'
        return None

    @staticmethod
    def version() -> str:
        return _version_line([BOCHS, '--help', 'cpu'], 'Bochs x86 Emulator') + _deb_version('bochs')

    def _config(self, image: Path, work: Path) -> Path:
        text = (TEMPLATES / 'bochsrc.in').read_text().format(
            image=image, cylinders=image.stat().st_size // CYLINDER, serial=work / 'serial.txt',
            log=work / 'bochs.log', model=self.model)
        cfg = work / 'bochsrc'
        cfg.write_text(text)
        return cfg

    def boot(self, image: Path, work: Path, idle: float, deadline: float) -> BootResult:
        cfg = self._config(image, work)
        (work / 'serial.txt').unlink(missing_ok=True)
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack('HHHH', 25, 80, 0, 0))
        env = dict(os.environ, TERM='xterm', LTDL_LIBRARY_PATH=os.environ.get(
            'LTDL_LIBRARY_PATH', '/usr/lib/x86_64-linux-gnu/bochs/plugins'))
        try:
            proc = subprocess.Popen(
                [BOCHS, '-q', '-f', str(cfg), '-rc', str(TEMPLATES / 'bochs_debugger.rc')],
                stdin=slave, stdout=slave, stderr=slave, cwd=work, env=env,
                start_new_session=True)
        finally:
            os.close(slave)
        drain = threading.Thread(target=_drain, args=(master,), daemon=True)
        drain.start()
        try:
            result = watch(proc, work / 'serial.txt', idle, deadline)
        finally:
            drain.join(timeout=5)
            os.close(master)
        if result.status != 'end':
            result.detail = f'{result.detail}; {_log_tail(work / "bochs.log")}'
        return result


def _drain(fd: int) -> None:
    """Read the terminal side so Bochs never blocks on a full pty (output discarded)."""
    while True:
        try:
            if not os.read(fd, 65536):
                return
        except OSError:
            return


def _log_tail(path: Path) -> str:
    try:
        lines = path.read_text(errors='replace').splitlines()
    except OSError:
        return 'no bochs log'
    keep = [l for l in lines if ('p[' in l or 'e[' in l) and '|' not in l][-3:]
    return ' / '.join(keep) or 'bochs log: ' + ' / '.join(lines[-2:])


DRIVERS = {'qemu': Qemu, 'bochs': Bochs}
