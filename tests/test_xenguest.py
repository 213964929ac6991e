"""The PV test guest (pvsmt/validate/xenguest, xencases, xenrun): the case table, the
console-line parser, and real runs under Xen in QEMU/TCG.

Real runs need QEMU and Xen binaries (tests/xen_builds.py): Debian's Xen 4.17 (PV64 only,
$PVSMT_XEN_417, default /boot/xen-4.17-amd64.gz) and a Xen master build with CONFIG_PV32=y
($PVSMT_XEN_MASTER, default: built from ../shared/xen/xen-c447b7308b.tar.xz and cached).
They are skipped when absent unless PVSMT_REQUIRE_XEN=1.
Each run batches its cases into as few boots as possible (one extra boot per domain
crash), so the wall time is a handful of boots of 1-3 s.
"""
from __future__ import annotations

import itertools
import struct
from pathlib import Path

import pytest

from pvsmt.validate.xencases import (GDT_ENTS, GDT_LIMIT_INDEX, HEADER, LDT_ENTS, OVERRIDE,
                                     RECORD, TABLE_MAGIC, XenCase, XenObservation, classify_rip,
                                     encode_table, guest_line, parse_case_line, validate)
from pvsmt.validate.xenrun import Boot, EmulatorError, available, run_xen_cases

from xen_builds import REQUIRE, xen_binary


# ---------------------------------------------------------------- table and parser

def test_table_layout():
    c = XenCase(7, 'pv64', 'user', 'compat', 'into', of=True, tt=((4, 1, 3), (13, 0, 0)),
                tt_if=True, cb_sysenter_mask=True)
    blob = encode_table('pv64', [c, XenCase(8)])
    assert HEADER.unpack_from(blob) == (TABLE_MAGIC, 2, 2, 0)
    rec = RECORD.unpack_from(blob, HEADER.size)
    # id insn gm mode vec prefix flags flags2 gate gate_selector ovr_count ovr_first
    # (gate: the defaults, present DPL3 within the limit, for an instruction that reads none)
    assert rec == (7, 2, 1, 1, 0, 0, 0x01 | 0x04 | 0x08 | 0x10 | 0x20 | 0x80, 1, 0x0f, 0, 2, 0)
    rec2 = RECORD.unpack_from(blob, HEADER.size + RECORD.size)
    assert rec2[0] == 8 and rec2[10:] == (0, 2)
    ovr = blob[HEADER.size + 2 * RECORD.size:]
    assert [OVERRIDE.unpack_from(ovr, 4 * i) for i in range(2)] == [(4, 1, 3, 0), (13, 0, 0, 0)]
    assert RECORD.size == 20 and struct.calcsize('<IIII') == HEADER.size
    pv32 = encode_table('pv32', [XenCase(1, 'pv32', mode='compat')])
    assert HEADER.unpack_from(pv32)[3] == 1


def test_gate_byte_and_selector():
    def record(**kw):
        return RECORD.unpack_from(encode_table('pv32', [XenCase(1, 'pv32', 'user', 'compat', 'callgate',
                                                                 **kw)]), HEADER.size)
    # bit0 present, bits1-2 DPL, bit3 in_limit, bits4-5 target RPL, bit6 fresh page
    assert record(gate_selector=0x1007)[8:10] == (0x0f, 0x1007)
    assert record(gate_selector=0x1004, gate_present=False, gate_dpl=0, gate_target_rpl=1)[8] == 0x18
    assert record(gate_selector=0x1005, gate_dpl=2, gate_fresh_page=True)[8] == 0x4d
    assert record(gate_selector=0x1007, gate_in_limit=False)[8] == 0x07


@pytest.mark.parametrize('kw', [
    dict(gate_selector=0x0003),                                  # the null selector: no gate
    dict(gate_selector=8 * (GDT_ENTS - 2) | 3),                  # the guest's last GDT gate
    dict(gate_selector=8 * (LDT_ENTS - 2) | 7),                  # the largest LDT's last gate
    dict(gate_selector=8 * GDT_LIMIT_INDEX, gate_in_limit=False),
    dict(gate_selector=0x0004, gate_in_limit=False),             # LDT index 0 beyond: no LDT
    dict(gate_selector=0x1004, gate_fresh_page=True),
])
def test_gates_the_guest_can_install(kw):
    validate(XenCase(1, insn='callgate', **kw))


@pytest.mark.parametrize('kw, what', [
    (dict(gate_selector=8 * (GDT_ENTS - 1)), 'needs index \\+ 1 < 0x1c00'),
    (dict(gate_selector=8 * GDT_ENTS + 3), "Xen's, not gates"),
    (dict(gate_selector=0x1003, gate_in_limit=False), 'GDTR limit covers'),
    (dict(gate_selector=8 * (LDT_ENTS - 1) | 4), 'the largest LDT'),
    (dict(gate_selector=0x1003, gate_fresh_page=True), 'LDT gate within the limit only'),
    (dict(gate_selector=0x1004, gate_dpl=4), 'gate_dpl'),
])
def test_gates_the_guest_cannot_install(kw, what):
    with pytest.raises(ValueError, match=what):
        validate(XenCase(1, insn='callgate', **kw))


@pytest.mark.parametrize('kw, what', [
    (dict(guest='pv32'), 'no 64-bit code'),
    (dict(insn='int_n', prefix='rex', mode='compat'), 'REX'),
    (dict(insn='ud2', prefix='legacy'), 'int_n only'),
    (dict(tt=((6, 0, 0), (0, 0, 0), (14, 0, 0))), 'completion'),
    (dict(tt=((6, 1, 4),)), 'bad tt override'),
    (dict(guest_mode='ring2'), 'guest_mode'),
])
def test_validate_rejects(kw, what):
    with pytest.raises(ValueError, match=what):
        validate(XenCase(1, **kw))


def test_wrong_guest_in_table():
    with pytest.raises(ValueError, match='pv32'):
        encode_table('pv64', [XenCase(1, 'pv32', mode='compat')])


def test_classify_rip():
    legacy = XenCase(1, insn='int_n', vector=0x21, prefix='legacy')
    assert [classify_rip(legacy, a) for a in ('+0', '+1', '+2', '+3', '+7', 'Z')] == \
        ['insn', 'opcode', 'plus2', 'next', 'other', 'zero']
    plain = XenCase(1, insn='int_n', vector=0x21)
    assert classify_rip(plain, '+2') == 'next'
    assert classify_rip(XenCase(1, insn='ud0'), '+2') == 'plus2'
    assert classify_rip(XenCase(1, insn='int3'), '-1') == 'other'


def test_parse_lines():
    c = XenCase(0x1a, insn='int_n', vector=0x21, guest_mode='user')
    assert parse_case_line('PVSMT C 1a X d 10a +0 0 e033', c) == XenObservation(
        0x1a, 'exception', vector=13, error_code=0x10a, rip='insn', masked=False,
        detail='at=+0 cs=e033')
    assert parse_case_line('PVSMT C 1a X 21 - +2 1 e033', c).masked is True
    s = XenCase(2, insn='syscall', guest_mode='user')
    assert parse_case_line('PVSMT C 2 B syscall +2 1 e033', s) == XenObservation(
        2, 'callback', callback='syscall', rip='next', masked=True, detail='at=+2 cs=e033')
    e = XenCase(3, insn='sysenter')
    assert parse_case_line('PVSMT C 3 B sysenter Z 0 3', e).rip == 'zero'
    assert parse_case_line('PVSMT C 3 B upcall +0 0 e033', e).event == 'error'
    assert parse_case_line('PVSMT C 3 N', e) == XenObservation(3, 'none', rip='next')
    assert parse_case_line('PVSMT C 3 H 40011 1', e).detail == 'rax=40011 ok'
    assert parse_case_line('PVSMT C 3 H ffffffda 0', e).detail == 'rax=ffffffda not xen_version'
    assert parse_case_line('PVSMT C 3 U set_trap_table -16', e).event == 'error'
    g = XenCase(5, 'pv32', 'user', 'compat', 'callgate', gate_selector=0x1007)
    assert parse_case_line('PVSMT C 5 G +7 0 e02b', g) == XenObservation(
        5, 'call_gate', rip='target', masked=False, detail='ret=+7 (next) cs=e02b')
    for bad in ('PVSMT C 5 G +7 0', 'PVSMT C 5 G x 0 e02b'):
        with pytest.raises(ValueError):
            parse_case_line(bad, g)
    for bad in ('PVSMT C 4 N', 'PVSMT C 3 X 6', 'PVSMT C 3 Q', 'PVSMT C zz N', 'PVSMT C 3 H 1'):
        with pytest.raises(ValueError):
            parse_case_line(bad, e)
    assert guest_line('(d0) PVSMT C 3 N\r') == 'PVSMT C 3 N'
    assert guest_line('(XEN) Xen version 4.17.7 (Debian)') is None


def test_console_watch():
    b = Boot()
    for ln in ['(XEN) Xen version 4.23-unstable (@) (gcc) debug=n', 'PVSMT START pv64 2 40017',
               'PVSMT C 1 N', '(XEN) domain_crash_sync called from entry.S: fault at x',
               '(XEN) Domain 0 (vcpu#0) crashed on cpu#0:']:
        assert not b.line(ln)
    assert b.line("(XEN) Hardware Dom0 crashed: 'noreboot' set - not rebooting.")
    assert b.status == 'crash' and b.banner.startswith('Xen version 4.23-unstable')
    assert b.lines == ['PVSMT START pv64 2 40017', 'PVSMT C 1 N']
    assert 'domain_crash_sync' in b.crash_detail()
    p = Boot()
    assert p.line('PVSMT PANIC frame-size 3 20') and p.status == 'panic'


# ---------------------------------------------------------------- real runs

def xen_or_skip(xen: Path) -> None:
    why = available(xen)
    if why and not REQUIRE:
        pytest.skip(why)
    assert why is None, f'required here (PVSMT_REQUIRE_XEN=1): {why}'


class Plan:
    """Cases plus the expected observation fields of some of them."""

    def __init__(self, guest: str):
        self.guest, self.cases, self.expect = guest, [], {}

    def add(self, expect: dict | None = None, **kw) -> None:
        c = XenCase(len(self.cases) + 1, self.guest, **kw)
        self.cases.append(c)
        if expect:
            self.expect[c.id] = expect


def exc(vector, error=-1, rip='insn', masked=False):
    return dict(event='exception', vector=vector, error_code=error, rip=rip, masked=masked)


def pv64_plan(master: bool) -> Plan:
    p = Plan('pv64')
    for gm in ('kernel', 'user'):
        for mode in ('long64', 'compat'):
            k = dict(guest_mode=gm, mode=mode)
            p.add(exc(3, rip='next'), insn='int3', **k)
            p.add(exc(3, rip='next', masked=True), insn='int3', tt_if=True, **k)
            p.add(exc(1, rip='next'), insn='int1', **k)
            for insn in ('ud0', 'ud1', 'ud2'):
                p.add(exc(6), insn=insn, **k)
            p.add(exc(13, 0), insn='callgate', **k)
            if mode == 'compat':
                p.add(dict(event='none', rip='next'), insn='into', of=False, **k)
                p.add(exc(4, rip='next'), insn='into', of=True, **k)
                p.add(exc(5), insn='bound', **k)
                p.add(dict(event='none'), insn='bound', bound_in_range=True, **k)
            else:
                # INTO is #UD in 64-bit code (SDM), but QEMU 10.0 TCG executes it as
                # INTO (the bare-metal kernel sees the same): not asserted
                p.add(None, insn='into', of=True, **k)
                p.add(exc(6), insn='bound', **k)
            for v in range(0, 256, 7):
                for dpl in (0, 3):
                    ok = dpl >= (1 if gm == 'kernel' else 3) or v in (3, 4, 0x80)
                    if v == 4 and mode == 'long64':
                        continue            # INT $4 is fine, but keep the sweep simple
                    p.add(exc(v, rip='next') if ok else exc(13, v * 8 + 2), insn='int_n',
                          vector=v, tt=((v, 1, dpl),), **k)
    # user mode only
    u = dict(guest_mode='user')
    p.add(exc(13, 0x10a), insn='int_n', vector=0x21, **u)
    p.add(exc(0x80, rip='next'), insn='int_n', vector=0x80, **u)   # int80 path: no vDPL check
    p.add(exc(13, 0x402), insn='int_n', vector=0x80, tt=((0x80, 0, 0),), **u)
    p.add(exc(0x21, rip='next' if master else 'plus2'), insn='int_n', vector=0x21,
          prefix='legacy', tt=((0x21, 1, 3),), **u)
    p.add(exc(13, 0x10a) if master else exc(0x21, rip='plus2'), insn='int_n', vector=0x21,
          prefix='rex', tt=((0x21, 1, 3),), **u)
    p.add(dict(event='callback', callback='syscall', rip='next', masked=False),
          insn='syscall', **u)
    p.add(dict(event='callback', callback='syscall', rip='next', masked=True),
          insn='syscall', cb_syscall_mask=True, **u)
    p.add(exc(6), insn='syscall', cb_syscall=False, **u)
    p.add(exc(6), insn='syscall', mode='compat', **u)       # Intel: no SYSCALL in compat mode
    for mode in ('long64', 'compat'):
        p.add(dict(event='callback', callback='sysenter', rip='zero', masked=False),
              insn='sysenter', mode=mode, **u)
        p.add(dict(event='callback', callback='sysenter', rip='zero', masked=True),
              insn='sysenter', mode=mode, cb_sysenter_mask=True, **u)
        p.add(exc(13, 0, rip='zero'), insn='sysenter', mode=mode, cb_sysenter=False, **u)
    # kernel mode: SYSCALL is the hypercall instruction
    p.add(dict(event='hypercall'), insn='syscall')
    p.add(dict(event='hypercall'), insn='syscall', cb_syscall=False)
    # a domain crash (no TT[3]) ends the boot; the next case runs in the next boot
    p.add(dict(event='domain_crash'), insn='int3', guest_mode='user', tt=((3, 0, 0),))
    p.add(exc(6), insn='ud2', guest_mode='user')
    return p


def pv32_plan() -> Plan:
    p = Plan('pv32')
    for gm in ('kernel', 'user'):
        k = dict(guest_mode=gm, mode='compat')
        p.add(exc(3, rip='next'), insn='int3', **k)
        p.add(exc(1, rip='next', masked=True), insn='int1', tt_if=True, **k)
        for insn in ('ud0', 'ud1', 'ud2'):
            p.add(exc(6), insn=insn, **k)
        p.add(exc(6), insn='syscall', **k)                 # Intel: no SYSCALL in compat mode
        p.add(dict(event='callback', callback='sysenter', rip='zero', masked=False),
              insn='sysenter', **k)
        p.add(exc(13, 0, rip='zero'), insn='sysenter', cb_sysenter=False, **k)
        p.add(dict(event='none', rip='next'), insn='into', **k)
        p.add(exc(4, rip='next'), insn='into', of=True, **k)
        p.add(exc(5), insn='bound', **k)
        p.add(dict(event='none'), insn='bound', bound_in_range=True, **k)
        p.add(exc(13, 0), insn='callgate', **k)
        for v in range(0, 256, 5):
            for dpl in (0, 1, 3):
                if v == 0x82 and gm == 'kernel':
                    continue
                ok = dpl >= (1 if gm == 'kernel' else 3) or v in (3, 4, 0x80)
                p.add(exc(v, rip='next') if ok else exc(13, v * 8 + 2), insn='int_n',
                      vector=v, tt=((v, 1, dpl),), **k)
        p.add(exc(0x21, rip='next'), insn='int_n', vector=0x21, prefix='legacy',
              tt=((0x21, 1, 3),), **k)
    p.add(dict(event='hypercall'), insn='int_n', vector=0x82, mode='compat')
    p.add(exc(13, 0x412), insn='int_n', vector=0x82, mode='compat', guest_mode='user')
    p.add(dict(event='domain_crash'), insn='int3', mode='compat', tt=((3, 0, 0),))
    p.add(exc(6), insn='ud2', mode='compat', guest_mode='user')
    return p


def gate_plan(guest: str) -> Plan:
    """Far CALLs through gates the guest writes (GDT 0x200, LDT 0x200: selectors 0x1000, 0x1004).
    PV64: no emulation, the CPU's #GP(sel) or, for a not-present gate whose DPL permits, #NP(sel);
    PV32: Xen emulates a present gate the guest's DPL permits (pv/emul-gate-op.c)."""
    p = Plan(guest)
    for gm, mode in itertools.product(('kernel', 'user'), ('compat',) if guest == 'pv32'
                                      else ('long64', 'compat')):
        k = dict(guest_mode=gm, mode=mode, insn='callgate')
        cpl = 1 if guest == 'pv32' and gm == 'kernel' else 3
        cs = {'kernel': 'e019', 'user': 'e02b'}[gm]
        for sel in (0x1003, 0x1007):
            gp, np_ = exc(13, sel & ~3), exc(11, sel & ~3)
            emulated = dict(event='call_gate', rip='target', detail=f'ret=+7 (next) cs={cs}')
            p.add(emulated if guest == 'pv32' else gp, gate_selector=sel, **k)
            p.add(np_, gate_selector=sel, gate_present=False, **k)
            p.add(gp, gate_selector=sel, gate_present=False, gate_dpl=0, **k)
            if sel & 4:  # an LDT that ends just before the gate
                p.add(gp, gate_selector=sel, gate_in_limit=False, **k)
            # DPL 1 written, RPL 1: PV32 keeps the DPL (ring 1), PV64 makes it 3 (both audited to 0);
            # with RPL 3 the gate's DPL is below the RPL
            rpl1 = sel & ~3 | 1
            p.add(gp if guest == 'pv64' or cpl == 3 else emulated, gate_selector=rpl1, gate_dpl=1, **k)
            p.add(gp if cpl == 3 else np_, gate_selector=rpl1, gate_present=False, gate_dpl=1, **k)
            p.add(gp, gate_selector=sel, gate_dpl=1, **k)
        p.add(exc(13, 0xf000), gate_selector=0xf003, gate_in_limit=False, **k)
        if guest == 'pv32':
            # a not-present DPL0 gate: Xen reads its DPL from the target selector's RPL
            p.add(exc(11 if cpl == 1 else 13, 0x1004), gate_selector=0x1005, gate_present=False,
                  gate_dpl=0, gate_target_rpl=1, **k)
            p.add(exc(11, 0x1004), gate_selector=0x1007, gate_present=False, gate_dpl=0,
                  gate_target_rpl=3, **k)
            # an audited DPL3 gate (target RPL 3) in a page Xen then validates: the page is refused
            p.add(exc(14, 0 if cpl == 1 else 4), gate_selector=0x1007, gate_fresh_page=True, **k)
            p.add(dict(event='call_gate') if cpl == 1 else exc(13, 0x1004), gate_selector=0x1005,
                  gate_dpl=1, gate_fresh_page=True, **k)
    return p


def mismatches(plan: Plan, obs: list) -> list:
    assert len(obs) == len(plan.cases)
    assert [o.case_id for o in obs] == [c.id for c in plan.cases]
    assert not [o for o in obs if o.event in ('error', 'timeout')], obs
    return [(c, o) for c, o in zip(plan.cases, obs)
            if any(getattr(o, f) != want for f, want in plan.expect.get(c.id, {}).items())]


def check(plan: Plan, obs: list, info: dict, version: str) -> None:
    assert info['xen_version'].startswith(version), info
    wrong = mismatches(plan, obs)
    assert not wrong, '\n'.join(f'{c}\n  -> {o}' for c, o in wrong[:10])
    hc = [o for o in obs if o.event == 'hypercall']
    assert hc and all(o.detail == f'rax={info["xen_version_hypercall"]} ok' for o in hc)
    crashes = [o for o in obs if o.event == 'domain_crash']
    assert len(crashes) == 1 and 'crash' in crashes[0].detail
    assert info['boots'] == 2


def test_not_a_xen(tmp_path):
    bogus = tmp_path / 'xen'
    bogus.write_text('not a hypervisor\n')
    xen_or_skip(bogus)
    with pytest.raises(EmulatorError, match='never started'):
        run_xen_cases(bogus, 'pv64', [XenCase(1)], idle_timeout=10)


def test_pv64_xen417():
    xen = xen_binary('debian-4.17')
    xen_or_skip(xen)
    plan = pv64_plan(master=False)
    obs, info = run_xen_cases(xen, 'pv64', plan.cases)
    check(plan, obs, info, '4.17')
    assert info['xen_version_hypercall'] == '40011'
    assert len(plan.cases) >= 200


def test_pv64_master():
    xen = xen_binary('master')
    xen_or_skip(xen)
    plan = pv64_plan(master=True)
    obs, info = run_xen_cases(xen, 'pv64', plan.cases)
    check(plan, obs, info, '4.2')


def test_pv32_master():
    xen = xen_binary('master')
    xen_or_skip(xen)
    plan = pv32_plan()
    obs, info = run_xen_cases(xen, 'pv32', plan.cases)
    check(plan, obs, info, '4.2')
    assert len(plan.cases) >= 200


@pytest.mark.parametrize('xen_name, guest', [('debian-4.17', 'pv64'), ('master', 'pv64'), ('master', 'pv32')])
def test_call_gates(xen_name, guest):
    xen = xen_binary(xen_name)
    xen_or_skip(xen)
    plan = gate_plan(guest)
    obs, info = run_xen_cases(xen, guest, plan.cases)
    wrong = mismatches(plan, obs)
    assert not wrong, '\n'.join(f'{c}\n  -> {o}' for c, o in wrong[:10])
    assert info['boots'] == 1
