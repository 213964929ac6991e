"""Cases, observations, the binary case table and the console-line parser of the PV
test guest (``xenguest/``), which Xen boots as dom0.  Pure Python, no z3.

Case table (the guest's initrd module; little-endian)::

    header 16 bytes : u32 magic 'PVXG' (0x47585650), u32 ncases, u32 noverrides,
                      u32 guest (0 pv64, 1 pv32)
    ncases x 20     : u32 id, u8 insn, u8 guest_mode, u8 mode, u8 vector, u8 prefix,
                      u8 flags, u8 flags2, u8 gate, u16 gate_selector, u16 ovr_count,
                      u32 ovr_first
    noverrides x 4  : u8 vector, u8 present, u8 vdpl, u8 0

insn: index in ``cases.INSNS``; guest_mode 0 kernel / 1 user; mode 0 long64 / 1 compat;
prefix 0 none / 1 legacy (0x66) / 2 rex (0x48); flags: bit0 OF, bit1 bound_in_range,
bit2 tt_if, bit3 cb_syscall, bit4 cb_syscall32, bit5 cb_sysenter, bit6 cb_syscall_mask,
bit7 cb_syscall32_mask; flags2: bit0 cb_sysenter_mask; gate (callgate with a non-null
selector): bit0 present, bits1-2 dpl, bit3 in_limit, bits4-5 gate_target_rpl, bit6
gate_fresh_page.

A callgate case's gate: the guest writes it (HYPERVISOR_update_descriptor) into its
GDT (GDT_ENTS entries, every frame a guest may own) or its LDT (set per case with
MMUEXT_SET_LDT: LDT_ENTS entries, or, for a selector beyond the limit, just up to
it).  A GDT selector is beyond the limit only from index GDT_LIMIT_INDEX: the GDTR
limit ends with Xen's reserved page.  See xenguest/layout.h.

Console lines (numbers in hex; Xen may prefix a guest line with ``(d0) ``)::

    PVSMT START <pv64|pv32> <ncases> <xen_version: major<<16|minor>
    PVSMT C <id> X <vec> <err|-> <at> <mask> <cs>    exception through TT[vec]
    PVSMT C <id> B <callback> <at> <mask> <cs>       syscall / syscall32 / sysenter
                                                     (upcall / failsafe: an error)
    PVSMT C <id> H <rax> <ok>                        EAX changed: a hypercall returned <rax>
                                                     (ok 1: it is xen_version's value)
    PVSMT C <id> N                                   reached the completion: nothing
    PVSMT C <id> G <ret> <mask> <cs>                 the far CALL arrived at the gate's
                                                     target (Xen emulated it); <ret> the
                                                     return address it pushed, <cs> the
                                                     caller's CS
    PVSMT C <id> U <what> <rc>                       the guest could not set the case up
    PVSMT PANIC <what> <a> <b>
    PVSMT END

<at> is the saved RIP minus the instruction's start (``+0``, ``+2``, ``-3``...) or ``Z``
for a saved RIP of 0; <mask> the event upcall mask on arrival; <cs> the saved CS.
"""
from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from ..model.instructions import BY_INSN
from ..model.vocab import Insn, Prefix
from .cases import INSNS, MODES, PREFIXES

GUESTS = ('pv64', 'pv32')
GUEST_MODES = ('kernel', 'user')
EVENTS = ('exception', 'callback', 'hypercall', 'none', 'call_gate', 'domain_crash', 'timeout',
          'error')
RIPS = ('insn', 'opcode', 'plus2', 'next', 'zero', 'target', 'other', 'none')
CALLBACKS = ('syscall', 'syscall32', 'sysenter')

TABLE_MAGIC = 0x47585650
HEADER = struct.Struct('<IIII')
RECORD = struct.Struct('<IBBBBBBBBHHI')
OVERRIDE = struct.Struct('<BBBB')

#: The PV test guest's descriptor tables (xenguest/layout.h): GDT entries the guest owns
#: (FIRST_RESERVED_GDT_ENTRY), LDT entries (the most MMUEXT_SET_LDT takes), and the first
#: GDT index beyond the GDTR limit (Xen's reserved page ends it: asm/desc.h L10-17).
GDT_ENTS = 14 * 512
LDT_ENTS = 16 * 512
GDT_LIMIT_INDEX = 15 * 512



@dataclass(frozen=True)
class XenCase:
    id: int
    guest: str = 'pv64'          # 'pv64' | 'pv32'
    guest_mode: str = 'kernel'   # 'kernel' | 'user'
    mode: str = 'long64'         # 'long64' | 'compat' (pv32: compat only)
    insn: str = 'int3'           # one of cases.INSNS
    vector: int = 0              # N of INT $N
    prefix: str = 'none'         # int_n only: 'none' | 'legacy' | 'rex' (rex: long64 only)
    of: bool = False             # into: EFLAGS.OF
    bound_in_range: bool = False
    tt: tuple = ()               # (vector, present, vdpl) over: all 256 present at vDPL 0
    tt_if: bool = False          # the IF flag (bit 2) of every registered TT entry
    cb_syscall: bool = True      # pv64 only (ignored for pv32: Xen has no such callback)
    cb_syscall32: bool = True
    cb_sysenter: bool = True
    cb_syscall_mask: bool = False
    cb_syscall32_mask: bool = True
    cb_sysenter_mask: bool = False
    gate_selector: int = 0       # callgate: the far CALL's selector (index, TI, RPL); 0: null
    gate_present: bool = True    # callgate: the gate's P bit as the guest writes it
    gate_dpl: int = 3            # callgate: the gate's DPL as the guest writes it
    gate_in_limit: bool = True   # callgate: the selector is within its table's limit
    gate_target_rpl: int = 0     # callgate, not present: the RPL of the gate's target selector
    gate_fresh_page: bool = False  # callgate, LDT: written into a page Xen has not yet validated


@dataclass(frozen=True)
class XenObservation:
    case_id: int
    event: str                   # one of EVENTS
    vector: int = -1
    error_code: int = -1         # -1 = none pushed
    callback: str = 'none'       # 'syscall' | 'syscall32' | 'sysenter'
    rip: str = 'none'            # one of RIPS
    masked: bool | None = None   # event upcall mask on arrival
    detail: str = ''


def _check(cond: bool, case: XenCase, what: str) -> None:
    if not cond:
        raise ValueError(f'case {case.id}: {what}')


def tt_present(case: XenCase) -> dict[int, tuple[bool, int]]:
    """vector -> (present, vdpl) after the overrides (later overrides win)."""
    table = {v: (True, 0) for v in range(256)}
    for v, p, d in case.tt:
        table[v] = (bool(p), d)
    return table


def validate(case: XenCase) -> None:
    """Raise ValueError if the guest cannot set the case up as described."""
    _check(0 <= case.id < 2 ** 32, case, 'id must fit in 32 bits')
    _check(case.guest in GUESTS, case, f'guest {case.guest!r} not in {GUESTS}')
    _check(case.guest_mode in GUEST_MODES, case, f'guest_mode {case.guest_mode!r} not in '
           f'{GUEST_MODES}')
    _check(case.mode in MODES, case, f'mode {case.mode!r} not in {MODES}')
    _check(not (case.guest == 'pv32' and case.mode == 'long64'), case,
           'a PV32 guest has no 64-bit code')
    _check(case.insn in INSNS, case, f'insn {case.insn!r} not in {INSNS}')
    _check(0 <= case.vector <= 255, case, 'vector must be 0..255')
    _check(case.prefix in PREFIXES, case, f'prefix {case.prefix!r} not in {PREFIXES}')
    _check(case.prefix == 'none' or case.insn == 'int_n', case, 'a prefix applies to int_n only')
    _check(not (case.prefix == 'rex' and case.mode == 'compat'), case,
           'a REX prefix exists in 64-bit mode only')
    _check(0 <= case.gate_selector <= 0xFFFF, case, 'gate_selector must be 16 bits')
    _check(case.gate_dpl in (0, 1, 2, 3) and case.gate_target_rpl in (0, 1, 2, 3), case,
           'gate_dpl and gate_target_rpl must be 0..3')
    why = gate_unrealizable(case)
    _check(not why, case, why)
    for ov in case.tt:
        _check(len(ov) == 3 and 0 <= ov[0] <= 255 and ov[2] in (0, 1, 2, 3), case,
               f'bad tt override {ov!r} (vector, present, vdpl)')
    _check(len(case.tt) < 2 ** 16, case, 'too many tt overrides')
    table = tt_present(case)
    _check(any(table[v][0] for v in (6, 0, 14)), case,
           'the completion needs TT[6], TT[0] or TT[14] present')


def gate_unrealizable(case: XenCase) -> str:
    """Why the guest cannot install the gate a callgate case names ('' if it can)."""
    index, ldt = case.gate_selector >> 3, case.gate_selector & 4
    if case.insn != 'callgate' or (not ldt and index == 0):
        return ''  # no gate: the null selector
    if case.gate_fresh_page and not (ldt and case.gate_in_limit):
        return 'gate_fresh_page: an LDT gate within the limit only (the GDT is validated once, by set_gdt)'
    if ldt:
        return '' if not case.gate_in_limit or index + 1 < LDT_ENTS else (
            f'LDT index {index:#x}: a 16-byte gate needs index + 1 < {LDT_ENTS:#x} (the largest LDT)')
    if case.gate_in_limit:
        return '' if index + 1 < GDT_ENTS else (
            f'GDT index {index:#x}: a 16-byte gate in the guest\'s GDT needs index + 1 < {GDT_ENTS:#x} '
            f'(the entries from {GDT_ENTS:#x} are Xen\'s, not gates)')
    return '' if index >= GDT_LIMIT_INDEX else (
        f'GDT index {index:#x} beyond the limit: the GDTR limit covers every index below '
        f'{GDT_LIMIT_INDEX:#x} (Xen\'s reserved page ends it)')


def gate_flags(c: XenCase) -> int:
    """The record's gate byte (module docstring)."""
    return (int(c.gate_present) | c.gate_dpl << 1 | int(c.gate_in_limit) << 3
            | c.gate_target_rpl << 4 | int(c.gate_fresh_page) << 6)


def insn_length(case: XenCase) -> int:
    """The bytes xenguest/guest.c build_stub writes: the instruction's row (`forms`, `compat_form`)."""
    row = BY_INSN[Insn.parse(case.insn)]
    return row.length(Prefix.parse(case.prefix), compat=case.mode == 'compat')


def prefix_length(case: XenCase) -> int:
    return int(case.insn == 'int_n' and case.prefix != 'none')


def classify_rip(case: XenCase, at: str) -> str:
    """The guest's <at> field as a RIPS class."""
    if at == 'Z':
        return 'zero'
    off = int(at, 16)
    length, pre = insn_length(case), prefix_length(case)
    if off == 0:
        return 'insn'
    if pre and off == pre:
        return 'opcode'
    if off == length:
        return 'next'
    if off == 2:
        return 'plus2'
    return 'other'


def _flags(c: XenCase) -> tuple[int, int]:
    bits = (c.of, c.bound_in_range, c.tt_if, c.cb_syscall, c.cb_syscall32, c.cb_sysenter,
            c.cb_syscall_mask, c.cb_syscall32_mask)
    return sum(1 << i for i, b in enumerate(bits) if b), int(c.cb_sysenter_mask)


def encode_table(guest: str, cases: list[XenCase]) -> bytes:
    """The binary case table (module docstring) for one guest kind."""
    records, overrides = [], []
    for c in cases:
        validate(c)
        if c.guest != guest:
            raise ValueError(f'case {c.id}: guest {c.guest!r} in a {guest} table')
        f1, f2 = _flags(c)
        records.append(RECORD.pack(
            c.id, INSNS.index(c.insn), GUEST_MODES.index(c.guest_mode), MODES.index(c.mode),
            c.vector, PREFIXES.index(c.prefix), f1, f2, gate_flags(c), c.gate_selector, len(c.tt),
            len(overrides)))
        overrides.extend(OVERRIDE.pack(v, int(bool(p)), d, 0) for v, p, d in c.tt)
    head = HEADER.pack(TABLE_MAGIC, len(cases), len(overrides), GUESTS.index(guest))
    return head + b''.join(records) + b''.join(overrides)


def table_size(case: XenCase) -> int:
    return RECORD.size + OVERRIDE.size * len(case.tt)


LINE_RE = re.compile(r'PVSMT (?:START|C|PANIC|END)\b.*')


def guest_line(console_line: str) -> str | None:
    """The guest's part of a Xen console line ('(d0) ' or other prefixes dropped)."""
    m = LINE_RE.search(console_line)
    return m.group(0).strip() if m else None


def parse_case_line(line: str, case: XenCase) -> XenObservation:
    """One ``PVSMT C`` line (guest part) -> the observation for case."""
    f = line.split()
    if len(f) < 4 or f[:2] != ['PVSMT', 'C']:
        raise ValueError(f'not a case line: {line!r}')
    cid, kind, rest = int(f[2], 16), f[3], f[4:]
    if cid != case.id:
        raise ValueError(f'line for case {cid} where {case.id} was due: {line!r}')
    try:
        if kind == 'N' and not rest:
            return XenObservation(cid, 'none', rip='next')
        if kind == 'G' and len(rest) == 3:
            ret, mask, cs = rest
            return XenObservation(cid, 'call_gate', rip='target', masked=mask != '0',
                                  detail=f'ret={ret} ({classify_rip(case, ret)}) cs={int(cs, 16):x}')
        if kind == 'H' and len(rest) == 2 and rest[1] in '01':
            ok = 'ok' if rest[1] == '1' else 'not xen_version'
            return XenObservation(cid, 'hypercall', rip='next', detail=f'rax={rest[0]} {ok}')
        if kind == 'X' and len(rest) == 5:
            vec, err, at, mask, cs = rest
            return XenObservation(cid, 'exception', vector=int(vec, 16),
                                  error_code=-1 if err == '-' else int(err, 16),
                                  rip=classify_rip(case, at), masked=mask != '0',
                                  detail=f'at={at} cs={cs}')
        if kind == 'B' and len(rest) == 4:
            name, at, mask, cs = rest
            if name in CALLBACKS:
                return XenObservation(cid, 'callback', callback=name,
                                      rip=classify_rip(case, at), masked=mask != '0',
                                      detail=f'at={at} cs={cs}')
            return XenObservation(cid, 'error', detail=f'{name} callback at={at} cs={cs}')
        if kind == 'U':
            return XenObservation(cid, 'error', detail='setup: ' + ' '.join(rest))
    except ValueError:
        pass
    raise ValueError(f'garbled case line: {line!r}')
