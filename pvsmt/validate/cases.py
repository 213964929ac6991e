"""Case and Observation records, the binary case table and the serial-line parser.

Case table (little endian), appended to the disk image at a 512-byte boundary; the boot
sector's header word at offset 8 holds its linear address (see kernel/layout.h):

    header, 16 bytes:  u32 magic 0x54435650 ('PVCT'), u32 ncases, u32 noverrides, u32 0
    ncases x 24 bytes: u32 id, u8 insn, u8 cpl, u8 mode, u8 vector, u8 prefix, u8 flags,
                       u16 gate_index, u8 gate_rpl, u8 gate_dpl, u16 ovr_count,
                       u32 ovr_first, u32 0
    noverrides x 4:    u8 vector, u8 present, u8 dpl, u8 type (0 interrupt, 1 trap)

insn: INSNS.index(name); mode: 0 long64, 1 compat; prefix: 0 none, 1 legacy (0x66),
2 rex (0x48); flags: bit0 OF, bit1 bound_in_range, bit2 efer_sce, bit3 sysenter_cs_null,
bit4 gate_table is ldt, bit5 gate_in_limit, bit6 gate_present.

Serial lines (one per case, see kernel/kernel.c): ``C <id> N``, ``C <id> I <vec> <err|->
<at> <I|T>``, ``C <id> S <L|C> <at>``, ``C <id> E``, ``C <id> G <at>``, where <at> is F, T
or O:<hex rip>; framed by ``PVSMT START <vendor> <n>`` and ``PVSMT END``.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from ..errors import InputError
from ..model.instructions import BY_INSN
from ..model.vocab import Insn

#: The instructions by their index in the case tables (the kernels' I_* constants): each
#: instruction's row (pvsmt/model/instructions.py) in `Insn` order, whose value is the index.
INSNS = tuple(insn.label for insn in BY_INSN)
assert all(Insn.parse(name) == i for i, name in enumerate(INSNS)), "Insn values must be 0..n-1"


def check_every_instruction(planned, where: str) -> None:
    """A plan runs every instruction that has a row: a new one needs its cases and a stub in the kernels."""
    planned = set(planned)
    missing = [name for name in INSNS if name not in planned]
    if missing:
        raise InputError(where, f"the plan has no case for instruction {', '.join(missing)}: give it cases "
                                f"and bytes in the test kernels' stubs (kernel/kernel.c, xenguest/guest.c)")


MODES = ('long64', 'compat')
PREFIXES = ('none', 'legacy', 'rex')
GATE_TYPES = ('interrupt', 'trap')

TABLE_MAGIC = 0x54435650
HEADER = struct.Struct('<IIII')
RECORD = struct.Struct('<IBBBBBBHBBHII')
OVERRIDE = struct.Struct('<BBBB')

GDT_FIRST_FREE = 17     # kernel descriptors occupy GDT indexes 1..16 (layout.h)
TABLE_ENTRIES = 8192    # the GDT and LDT are 64 KiB; a 16-byte gate needs index + 1 too
STUB_ADDR = 0x1000      # address of the instruction under test


@dataclass(frozen=True)
class Case:
    id: int
    insn: str          # one of INSNS
    cpl: int           # 0..3
    mode: str          # 'long64' | 'compat'
    vector: int = 0    # N of INT $N
    prefix: str = 'none'   # 'none' | 'legacy' | 'rex' (int_n only; rex in long64 only)
    of: bool = False
    bound_in_range: bool = False
    efer_sce: bool = True
    sysenter_cs_null: bool = False
    idt: tuple = ()    # (vector, present, dpl, 'interrupt'|'trap'); others present/DPL0/interrupt
    gate_table: str = 'gdt'   # 'gdt' | 'ldt'
    gate_index: int = 0
    gate_rpl: int = 0
    gate_in_limit: bool = True
    gate_present: bool = True
    gate_dpl: int = 0


@dataclass(frozen=True)
class Observation:
    case_id: int
    event: str        # 'none','idt','syscall','sysenter','call_gate','shutdown','timeout','error'
    vector: int = -1
    error_code: int = -1   # -1 = none pushed
    kind: str = 'none'     # 'fault' | 'trap' | 'other' | 'none'
    msr: str = 'none'      # 'lstar' | 'cstar' for syscall
    gate_type: str = ''    # 'interrupt' | 'trap' for idt events
    detail: str = ''


def _check(cond: bool, case: Case, what: str) -> None:
    if not cond:
        raise ValueError(f'case {case.id}: {what}')


def validate(case: Case) -> None:
    """Raise ValueError if the kernel cannot set the case up as described."""
    _check(0 <= case.id < 2 ** 32, case, 'id must fit in 32 bits')
    _check(case.insn in INSNS, case, f'insn {case.insn!r} not in {INSNS}')
    _check(case.cpl in (0, 1, 2, 3), case, 'cpl must be 0..3')
    _check(case.mode in MODES, case, f'mode {case.mode!r} not in {MODES}')
    _check(0 <= case.vector <= 255, case, 'vector must be 0..255')
    _check(case.prefix in PREFIXES, case, f'prefix {case.prefix!r} not in {PREFIXES}')
    _check(case.prefix == 'none' or case.insn == 'int_n', case, 'a prefix applies to int_n only')
    _check(not (case.prefix == 'rex' and case.mode == 'compat'), case,
           'a REX prefix exists in 64-bit mode only (0x48 is DEC EAX in compat mode)')
    for ov in case.idt:
        _check(len(ov) == 4 and 0 <= ov[0] <= 255 and ov[2] in (0, 1, 2, 3)
               and ov[3] in GATE_TYPES, case, f'bad idt override {ov!r}')
    _check(case.gate_table in ('gdt', 'ldt'), case, "gate_table must be 'gdt' or 'ldt'")
    _check(case.gate_rpl in (0, 1, 2, 3) and case.gate_dpl in (0, 1, 2, 3), case,
           'gate_rpl and gate_dpl must be 0..3')
    if case.gate_table == 'gdt':
        _check(case.gate_index == 0 or GDT_FIRST_FREE <= case.gate_index < TABLE_ENTRIES - 1,
               case, f'GDT gate_index must be 0 (null) or {GDT_FIRST_FREE}..{TABLE_ENTRIES - 2}')
    else:
        _check(0 <= case.gate_index < TABLE_ENTRIES - 1, case,
               f'LDT gate_index must be 0..{TABLE_ENTRIES - 2}')


def gate_selector(case: Case) -> int:
    """The selector the far CALL uses: index, TI (1 = LDT), RPL."""
    return (case.gate_index << 3) | (4 if case.gate_table == 'ldt' else 0) | case.gate_rpl


def _flags(case: Case) -> int:
    bits = (case.of, case.bound_in_range, case.efer_sce, case.sysenter_cs_null,
            case.gate_table == 'ldt', case.gate_in_limit, case.gate_present)
    return sum(1 << i for i, b in enumerate(bits) if b)


def encode_table(cases: list[Case]) -> bytes:
    """The binary case table the kernel reads (layout in the module docstring)."""
    records, overrides = [], []
    for c in cases:
        validate(c)
        records.append(RECORD.pack(
            c.id, INSNS.index(c.insn), c.cpl, MODES.index(c.mode), c.vector,
            PREFIXES.index(c.prefix), _flags(c), c.gate_index, c.gate_rpl, c.gate_dpl,
            len(c.idt), len(overrides), 0))
        overrides.extend(OVERRIDE.pack(v, int(bool(p)), d, GATE_TYPES.index(t))
                         for v, p, d, t in c.idt)
    head = HEADER.pack(TABLE_MAGIC, len(cases), len(overrides), 0)
    return head + b''.join(records) + b''.join(overrides)


def table_size(case: Case) -> int:
    return RECORD.size + OVERRIDE.size * len(case.idt)


# ---- serial output --------------------------------------------------------------------

def _at(token: str) -> tuple[str, str]:
    """Kind and detail from an <at> token: F, T or O:<hex rip>."""
    if token == 'F':
        return 'fault', ''
    if token == 'T':
        return 'trap', ''
    rip = int(token.split(':', 1)[1], 16)
    return 'other', f'pushed rip {rip:#x} (insn at {STUB_ADDR:#x})'


def parse_case_line(line: str) -> tuple[int, Observation]:
    """Parse one ``C ...`` line into (case id, Observation); ValueError if malformed."""
    f = line.split()
    if len(f) < 3 or f[0] != 'C':
        raise ValueError(f'not a case line: {line!r}')
    cid, ev = int(f[1], 16), f[2]
    if ev == 'N' and len(f) == 3:
        return cid, Observation(cid, 'none')
    if ev == 'I' and len(f) == 7:
        kind, detail = _at(f[5])
        err = -1 if f[4] == '-' else int(f[4], 16)
        gate = 'interrupt' if f[6] == 'I' else 'trap'
        return cid, Observation(cid, 'idt', vector=int(f[3], 16), error_code=err, kind=kind,
                                gate_type=gate, detail=detail)
    if ev == 'S' and len(f) == 5:
        kind, detail = _at(f[4])
        msr = {'L': 'lstar', 'C': 'cstar'}[f[3]]
        return cid, Observation(cid, 'syscall', kind=kind, msr=msr, detail=detail)
    if ev == 'E' and len(f) == 3:
        return cid, Observation(cid, 'sysenter')
    if ev == 'G' and len(f) == 4:
        kind, detail = _at(f[3])
        return cid, Observation(cid, 'call_gate', kind=kind, detail=detail)
    raise ValueError(f'malformed case line: {line!r}')
