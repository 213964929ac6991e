"""Quick self-check of the emulator harness.

    python -m pvsmt.validate.selfcheck --emulator qemu --vendor intel

Runs a built-in set of cases: INT $N over all 256 vectors with gate DPL 0 and 3 in both
code modes at CPL3 (1,024 cases), every other instruction at every CPL and mode, call
gates over table/RPL/DPL/present/limit, not-present exception gates (#NP with EXT, #DF),
prefixes, and one triple fault (to exercise the reboot-and-resume path).  It prints the
observation counts per instruction and the wall time; it judges nothing.
"""
from __future__ import annotations

import argparse
import collections
import itertools
import sys
import time

from .cases import Case, Observation
from .emulator import available, run_cases

MODES = ('long64', 'compat')


def int_sweep(first_id: int = 0) -> list[Case]:
    """INT $N, N = 0..255, gate DPL 0 and 3, 64-bit and compat mode, CPL3: 1,024 cases."""
    out = []
    for mode, dpl, vec in itertools.product(MODES, (0, 3), range(256)):
        out.append(Case(first_id + len(out), 'int_n', 3, mode, vector=vec,
                        idt=((vec, True, dpl, 'interrupt'),)))
    return out


def insn_matrix(first_id: int) -> list[Case]:
    """Every non-gate instruction at CPL 0..3 in both modes, with its flag variants."""
    variants = [('int3', {}), ('int1', {}), ('ud0', {}), ('ud1', {}), ('ud2', {}),
                ('into', {'of': True}), ('into', {'of': False}),
                ('bound', {'bound_in_range': True}), ('bound', {'bound_in_range': False}),
                ('syscall', {'efer_sce': True}), ('syscall', {'efer_sce': False}),
                ('sysenter', {'sysenter_cs_null': False}),
                ('sysenter', {'sysenter_cs_null': True})]
    out = []
    for (insn, kw), cpl, mode in itertools.product(variants, range(4), MODES):
        out.append(Case(first_id + len(out), insn, cpl, mode, **kw))
    return out


def gate_matrix(first_id: int) -> list[Case]:
    """Far CALL through a call gate: GDT/LDT, CPL 0/3, both modes, gate DPL 0..3, RPL 0/3,
    present or not, in or beyond the table limit; plus the null selector."""
    out = []
    for table, cpl, mode, dpl, rpl, present, in_limit in itertools.product(
            ('gdt', 'ldt'), (0, 3), MODES, range(4), (0, 3), (True, False), (True, False)):
        out.append(Case(first_id + len(out), 'callgate', cpl, mode, gate_table=table,
                        gate_index=40 if table == 'gdt' else 5, gate_rpl=rpl, gate_dpl=dpl,
                        gate_present=present, gate_in_limit=in_limit))
    for cpl, mode, rpl in itertools.product((0, 3), MODES, (0, 3)):
        out.append(Case(first_id + len(out), 'callgate', cpl, mode, gate_index=0, gate_rpl=rpl))
    return out


def idt_matrix(first_id: int) -> list[Case]:
    """Not-present and low-DPL gates for software INTs and exceptions, prefixes, #DF, and a
    triple fault in the middle (the runner must resume after it)."""
    np_ = lambda v, dpl=0: (v, False, dpl, 'interrupt')   # noqa: E731
    specs = [
        ('int3', 3, 'long64', {'idt': (np_(3, 3),)}),                  # #NP(0x1a)
        ('int3', 3, 'long64', {'idt': ((3, True, 3, 'trap'),)}),        # #BP via trap gate
        ('into', 3, 'compat', {'of': True, 'idt': (np_(4, 3),)}),      # #NP(0x22)
        ('int1', 3, 'long64', {'idt': ((1, True, 0, 'trap'),)}),        # no DPL check
        ('int1', 3, 'long64', {'idt': (np_(1),)}),                     # #NP(0x0b), EXT
        ('ud2', 3, 'long64', {'idt': (np_(6),)}),                      # #NP(0x33), EXT
        ('ud2', 3, 'compat', {'idt': (np_(6), np_(11))}),              # #DF(0)
        ('syscall', 3, 'long64', {'efer_sce': False, 'idt': (np_(6),)}),
        ('bound', 3, 'compat', {'idt': (np_(5),)}),                    # #NP(0x2b), EXT
        ('int_n', 3, 'long64', {'vector': 0x80, 'idt': (np_(13), np_(8))}),   # triple fault
        ('int_n', 3, 'long64', {'vector': 13, 'idt': (np_(13, 3),)}),  # #NP(0x6a)
        ('int_n', 3, 'long64', {'vector': 8, 'idt': ((8, True, 3, 'interrupt'),)}),
        ('int_n', 3, 'long64', {'vector': 14, 'idt': ((14, True, 3, 'trap'),)}),
    ]
    for vec, prefix, mode in itertools.product((0x80, 0x21), ('legacy', 'rex'), MODES):
        if not (prefix == 'rex' and mode == 'compat'):
            specs.append(('int_n', 3, mode, {'vector': vec, 'prefix': prefix,
                                             'idt': ((vec, True, 3, 'interrupt'),)}))
    return [Case(first_id + i, insn, cpl, mode, **kw) for i, (insn, cpl, mode, kw) in
            enumerate(specs)]


def builtin_cases() -> list[Case]:
    cases = int_sweep()
    for more in (insn_matrix, gate_matrix, idt_matrix):
        cases += more(len(cases))
    return cases


def _summary(o: Observation) -> str:
    if o.event == 'idt':
        err = '-' if o.error_code < 0 else f'{o.error_code:#x}'
        return f'idt v{o.vector} err={err} {o.kind} {o.gate_type}'
    if o.event == 'syscall':
        return f'syscall {o.msr}'
    return o.event


def report(cases: list[Case], obs: list[Observation], out=sys.stdout) -> None:
    """Counts of observations per instruction (the INT sweep by vector class)."""
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for c, o in zip(cases, obs):
        counts[c.insn][_summary(o) if c.insn != 'int_n' else _sweep_key(c, o)] += 1
    for insn in sorted(counts):
        print(f'{insn}:', file=out)
        for key, n in sorted(counts[insn].items()):
            print(f'  {n:5d}  {key}', file=out)
    events = collections.Counter(o.event for o in obs)
    print('events: ' + ', '.join(f'{k}={v}' for k, v in sorted(events.items())), file=out)


def _sweep_key(c: Case, o: Observation) -> str:
    """INT $N results grouped by shape: own vector delivered, or #GP/#NP whose error code
    is N*8+2 (the architectural selector-index form) or something else."""
    if o.event == 'idt' and o.vector == c.vector and o.error_code < 0:
        return f'idt own vector, no error code, {o.kind} {o.gate_type}'
    if o.event == 'idt' and o.vector in (11, 13) and o.error_code >= 0:
        shape = {c.vector * 16 + 2: 'N*16+2', c.vector * 8 + 2: 'N*8+2'}.get(
            o.error_code, f'{o.error_code:#x}')
        return f'idt v{o.vector} err={shape} {o.kind} {o.gate_type}'
    return _summary(o)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog='python -m pvsmt.validate.selfcheck', description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--emulator', choices=('qemu', 'bochs'), default='qemu')
    ap.add_argument('--vendor', choices=('intel', 'amd'), default='intel')
    ap.add_argument('--timeout', type=float, default=600.0)
    ap.add_argument('--dump', action='store_true', help='print every case and observation')
    args = ap.parse_args(argv)
    reason = available(args.emulator)
    if reason:
        print(f'{args.emulator}: not available: {reason}', file=sys.stderr)
        return 2
    sweep, rest = int_sweep(), builtin_cases()[1024:]
    t0 = time.monotonic()
    obs, info = run_cases(args.emulator, args.vendor, sweep, timeout=args.timeout)
    t1 = time.monotonic()
    more, info2 = run_cases(args.emulator, args.vendor, rest, timeout=args.timeout)
    t2 = time.monotonic()
    cases, obs = sweep + rest, obs + more
    if args.dump:
        for c, o in zip(cases, obs):
            print(f'{c}\n    -> {o}')
    report(cases, obs)
    print(f'{args.emulator}/{args.vendor}: {info["emulator_version"]}, cpu {info["cpu_model"]}, '
          f'CPUID vendor {info["cpuid_vendor"]}')
    print(f'INT $N sweep: {len(sweep)} cases, {info["boots"]} boot(s), {t1 - t0:.2f}s wall; '
          f'other cases: {len(rest)}, {info2["boots"]} boot(s), {t2 - t1:.2f}s wall')
    broken = [o for o in obs if o.event in ('error', 'timeout')]
    for o in broken:
        print(f'harness problem: {o}', file=sys.stderr)
    return 1 if broken else 0


if __name__ == '__main__':
    sys.exit(main())
