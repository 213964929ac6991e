"""Run validation cases on an emulator: the API the model side uses (no z3 here).

    obs, info = run_cases('qemu', 'intel', cases)

Each boot runs as many cases as fit in the image (one serial line each); a boot that
stops early (triple fault, hang, kernel panic) records the case whose line never came
as 'shutdown', 'timeout' or 'error' and the next boot resumes with the case after it.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

from .build import BuildError, build_kernel, make_image, missing_tools, table_capacity
from .cases import HEADER, Case, Observation, parse_case_line, table_size, validate
from .drivers import DRIVERS, VENDORS, BootResult

__all__ = ['Case', 'Observation', 'run_cases', 'available', 'BuildError', 'EmulatorError']

DEFAULT_TIMEOUT = 1800.0     # whole run_cases call, seconds
DEFAULT_IDLE = 20.0          # one boot with no new serial line for this long = hung


class EmulatorError(RuntimeError):
    """The emulator could not run the kernel at all (no start line, wrong vendor...)."""


def available(emulator: str) -> str | None:
    """None if the emulator and the kernel toolchain are usable, else a one-line reason."""
    if emulator not in DRIVERS:
        return f'unknown emulator {emulator!r} (known: {", ".join(DRIVERS)})'
    missing = missing_tools()
    if missing:
        return f'missing build tools: {", ".join(missing)}'
    return DRIVERS[emulator].available()


def _batch(kernel: bytes, cases: list[Case], start: int) -> list[Case]:
    """The longest run of cases from start whose table fits in one image."""
    room, end = table_capacity(kernel) - HEADER.size, start
    while end < len(cases) and table_size(cases[end]) <= room:
        room -= table_size(cases[end])
        end += 1
    return cases[start:end]


def _lost(case: Case, result: BootResult) -> Observation:
    """The observation for the case whose line never came."""
    event = {'exit': 'shutdown', 'reset': 'shutdown', 'idle': 'timeout',
             'deadline': 'timeout'}.get(result.status, 'error')
    return Observation(case.id, event, detail=f'{result.status}: {result.detail}'.strip())


def _check_start(result: BootResult, vendor: str, info: dict) -> None:
    if not result.lines:
        raise EmulatorError(f'the kernel never started ({result.status}: {result.detail})')
    fields = result.lines[0].split()
    got = fields[2] if len(fields) > 2 else '?'
    info['cpuid_vendor'] = got
    if got != VENDORS[vendor]:
        raise EmulatorError(f'asked for {vendor} but the CPU says {got!r}')


def _collect(batch: list[Case], result: BootResult) -> list[Observation]:
    """Observations of the cases that reported, checked against the expected ids."""
    out = []
    for line in result.lines[1:]:
        if not line.startswith('C '):
            continue
        try:
            cid, obs = parse_case_line(line)
        except ValueError as e:
            raise EmulatorError(f'garbled serial output: {e}') from e
        expect = batch[len(out)].id
        if cid != expect:
            raise EmulatorError(f'case line for id {cid} where {expect} was due: {line!r}')
        out.append(obs)
    return out


def run_cases(emulator: str, vendor: str, cases: list[Case], *,
              timeout: float = DEFAULT_TIMEOUT, idle_timeout: float = DEFAULT_IDLE,
              ) -> tuple[list[Observation], dict]:
    """Build (cached) the kernel image, run all cases (as many per boot as possible), return
    one Observation per case in order plus info {'emulator_version', 'cpu_model',
    'cpuid_vendor', 'boots'}."""
    reason = available(emulator)
    if reason:
        raise EmulatorError(f'{emulator}: {reason}')
    if vendor not in VENDORS:
        raise ValueError(f'vendor must be one of {", ".join(VENDORS)}')
    for c in cases:
        validate(c)
    driver = DRIVERS[emulator](vendor)
    kernel = build_kernel().read_bytes()
    info = {'emulator_version': driver.version(), 'cpu_model': driver.model,
            'cpuid_vendor': '', 'boots': 0}
    deadline = time.monotonic() + timeout
    observations: list[Observation] = []
    with tempfile.TemporaryDirectory(prefix=f'pvsmt-{emulator}-') as tmp:
        work = Path(tmp)
        while len(observations) < len(cases):
            if time.monotonic() > deadline:
                observations += [Observation(c.id, 'timeout', detail='run_cases time budget '
                                             'exhausted') for c in cases[len(observations):]]
                break
            batch = _batch(kernel, cases, len(observations))
            if not batch:
                raise ValueError(f'case {cases[len(observations)].id} alone does not fit')
            image = work / 'disk.img'
            image.write_bytes(make_image(kernel, batch))
            result = driver.boot(image, work, idle_timeout, deadline)
            info['boots'] += 1
            _check_start(result, vendor, info)
            done = _collect(batch, result)
            observations += done
            if result.status != 'end' and len(done) < len(batch):
                observations.append(_lost(batch[len(done)], result))
            elif result.status == 'end' and len(done) != len(batch):
                raise EmulatorError(f'boot ended after {len(done)} of {len(batch)} cases')
    return observations, info
