"""The vocabulary of the model: enumerations, knobs and outcome fields.

Everything user-facing is named here once: the `--set` names of `pvsmt explain`,
the names an invariant may use, the fields of the JSON output.  Adding a knob is
one entry in KNOBS (and a line in the README's table); the Z3 encoding, the
concrete evaluator, the parsers and the reports all read this table.

Names follow the SDM/APM and Xen: `cpl`, `dpl`, `efer.sce`, `sysenter_cs`,
`tt` (the guest's virtual trap table), `cb.*` (callbacks registered with
HYPERVISOR_callback_op).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

#: Sentinel for an absent integer (no vector, no error code pushed).
NONE = -1


class Label(IntEnum):
    """An enumeration whose user-facing spelling is its lower-case name.

    str() stays int's (z3 converts Python ints through str()); `label` and
    format() give the spelling.
    """

    @property
    def label(self) -> str:
        return self.name.lower()

    def __format__(self, spec: str) -> str:
        return format(self.label, spec)

    @classmethod
    def parse(cls, text: str) -> "Label":
        try:
            return cls[text.upper()]
        except KeyError:
            raise ValueError(f"expected one of {cls.spelling()}") from None

    @classmethod
    def spelling(cls) -> str:
        return "|".join(m.label for m in cls)


# --- the situation: who executes what, where ---------------------------------

class Vendor(Label):
    INTEL = 0  # Intel-like: everything that is not AMD-like
    AMD = 1    # AMD-like: AMD or Hygon (Xen's amd_like())


class Guest(Label):
    PV64 = 0   # kernel and user both at CPL3
    PV32 = 1   # kernel at CPL1, user at CPL3 (CPL2 also counts as user)


class GuestMode(Label):
    KERNEL = 0
    USER = 1


class CodeMode(Label):
    LONG64 = 0  # 64-bit code segment (CS.L=1)
    COMPAT = 1  # compatibility mode (CS.L=0, still long mode)


class Insn(Label):
    INT3 = 0      # CC
    INT_N = 1     # CD ib
    INTO = 2      # CE
    INT1 = 3      # F1 (ICEBP)
    CALLGATE = 4  # far CALL (9A / FF /3) through a call gate
    SYSCALL = 5   # 0F 05
    SYSENTER = 6  # 0F 34
    UD0 = 7       # 0F FF
    UD1 = 8       # 0F B9
    UD2 = 9       # 0F 0B
    BOUND = 10    # 62 /r, memory operand


class Prefix(Label):
    """Prefix form of INT $N: matters to Xen's emulator (reference 8.1)."""

    NONE = 0
    LEGACY = 1  # 0x66 / 0x67
    REX = 2     # 0x40-0x4f, 64-bit code only


class SysenterCS(Label):
    NULL = 0     # MSR_SYSENTER_CS[15:2] == 0
    NONNULL = 1


class GateTable(Label):
    GDT = 0
    LDT = 1


class GateType(Label):
    INTERRUPT = 0  # 64-bit interrupt gate (type 0xE): IF cleared on entry
    TRAP = 1       # 64-bit trap gate (type 0xF)


class Entry(Label):
    """Which Xen entry code an IDT vector leads to (gen-idt.h)."""

    EXCEPTION = 0  # handle_exception / handle_ist_exception -> do_* handler
    INT80 = 1      # entry_int80 (CONFIG_PV)
    INT82 = 2      # entry_int82 (CONFIG_PV32)
    IRQ = 3        # autogen stub -> common_interrupt


class Delivery(Label):
    IDT = 0
    FRED = 1


class Abi(Label):
    """Whose account of Xen's guest-visible behaviour a spec describes."""

    CODE = 0  # what Xen's code does (xen_idt.py, xen_fred.py)
    DOC = 1   # what docs/guest-guide/x86/pv-traps.rst says (xen_doc.py); silence is `unspecified`


# --- outcomes ----------------------------------------------------------------

class HwEvent(Label):
    NONE = 0       # the instruction completes without a control transfer
    IDT = 1        # delivery through IDT vector `vector`
    SYSCALL = 2    # SYSCALL through LSTAR or CSTAR
    SYSENTER = 3   # SYSENTER to SYSENTER_EIP
    CALL_GATE = 4  # far CALL transfers through the gate
    SHUTDOWN = 5   # triple fault
    FRED = 6       # delivered as a FRED event of type `source` with `vector` (no IDT)


class Source(Label):
    """What initiated an IDT delivery: the FRED event types' IDT counterparts."""

    NONE = 0
    HW_EXC = 1       # a hardware exception (#UD, #GP, #NP, #BR, ...)
    SW_INT = 2       # INT n (CD ib)
    SW_EXC = 3       # INT3 (CC) or INTO (CE)
    PRIV_SW_EXC = 4  # INT1 / ICEBP (F1)


class Kind(Label):
    NONE = 0
    FAULT = 1  # reported %rip at the instruction
    TRAP = 2   # reported %rip after the instruction


class Msr(Label):
    NONE = 0
    LSTAR = 1  # SYSCALL from 64-bit code
    CSTAR = 2  # SYSCALL from compatibility mode (AMD-like only)


class GuestEvent(Label):
    NONE = 0           # nothing happens
    EXCEPTION = 1      # bounced through TT[vector]
    HYPERCALL = 2
    CALLBACK = 3       # syscall / syscall32 / sysenter callback
    DOMAIN_CRASH = 4
    DOMAIN_PAUSED = 5  # a debugger (gdbsx) is attached: the domain is paused
    CALL_GATE = 6      # Xen emulated the far CALL through the gate
    XEN_CRASH = 7      # Xen itself panics: the guest took the host down
    UNMODELLED = 8     # a Xen entry reached in a way Xen does not expect


class Callback(Label):
    NONE = 0
    SYSCALL = 1
    SYSCALL32 = 2
    SYSENTER = 3


class Rip(Label):
    """Where the %rip the guest sees (in its frame, or on resuming) points."""

    NONE = 0    # no guest frame: the domain crashed or was paused, or Xen crashed
    INSN = 1    # at the first byte of the instruction (a fault, or rewound by the full length)
    OPCODE = 2  # past the prefixes, at the opcode: rewound by the un-prefixed length (2)
    NEXT = 3    # after the instruction (a trap, a hypercall's return, SYSCALL's %rcx)
    ZERO = 4    # 0: SYSENTER's stripped frame (rip=0, cs=3)
    TARGET = 5  # the target of an emulated call gate
    PLUS2 = 6   # the instruction's start + 2, whatever its length: inside a prefixed INT $N


class SwintEmul(Label):
    """How Xen's #GP handler resumes a permitted INT $N it emulates (IDT delivery).

    Named after the Xen change that tells the releases apart (reference 9.1).
    """

    PLUS2 = 0    # `regs->rip += 2` whatever the prefixes (before commit a934a600c4)
    DECODED = 1  # pv_emulate_sw_interrupt decodes the instruction; REX gives #GP (a934a600c4)


class MaskFlag(Label):
    """Which flag decides whether a bounce masks event delivery (sets the upcall mask)."""

    NONE = 0       # no bounce
    TT_IF = 1      # TI_GET_IF of the trap table entry (pv_inject_event, entry_int80)
    SYSCALL = 2    # VGCF_syscall_disables_events
    SYSCALL32 = 3  # syscall32_disables_events
    SYSENTER = 4   # sysenter_disables_events


# --- domains -------------------------------------------------------------------

@dataclass(frozen=True)
class Domain:
    """The values a knob or field can take."""

    enum: type[Label] | None = None  # an enumeration
    lo: int = 0                      # or an integer range lo..hi
    hi: int = 1
    boolean: bool = False            # or a boolean written 0|1
    optional: bool = False           # an integer that may be `none`

    def values(self) -> list:
        if self.enum is not None:
            return list(self.enum)
        if self.boolean:
            return [False, True]
        return list(range(self.lo, self.hi + 1))

    def spelling(self) -> str:
        if self.enum is not None:
            return self.enum.spelling()
        if self.boolean:
            return "0|1"
        return f"{self.lo}..{self.hi}" + ("|none" if self.optional else "")

    def parse(self, text: str):
        """Parse a user-written value; raises ValueError with a message."""
        text = text.strip()
        if self.enum is not None:
            return self.enum.parse(text)
        if self.optional and text == "none":
            return NONE
        try:
            value = int(text, 0)
        except ValueError:
            raise ValueError(f"expected {self.spelling()}") from None
        if self.boolean:
            if value not in (0, 1):
                raise ValueError("expected 0|1")
            return bool(value)
        if not self.lo <= value <= self.hi:
            raise ValueError(f"{text} is out of range {self.lo}..{self.hi}")
        return value

    def format(self, value) -> str:
        if self.enum is not None:
            return self.enum(value).label
        if self.boolean:
            return "1" if value else "0"
        if self.optional and value == NONE:
            return "none"
        if self.hi == 255:
            return f"{value:#04x}"  # a vector: two hex digits, as the SDM and Xen write them
        return hex(value) if self.hi > 15 else str(value)


def enum(e: type[Label]) -> Domain:
    return Domain(enum=e)


BOOL = Domain(boolean=True)
DPL = Domain(lo=0, hi=3)
VECTOR = Domain(lo=0, hi=255)


# --- knobs -------------------------------------------------------------------

@dataclass(frozen=True)
class Knob:
    """One scalar variable of a configuration.

    `system` knobs describe Xen and the CPU (spec facts, overridable with
    --set for what-if questions); the others describe the situation (who runs
    what) and are free in proofs.  `guest_layer` knobs exist only in specs
    with PV guests.
    """

    name: str
    domain: Domain
    help: str
    system: bool = False
    guest_layer: bool = False

    @property
    def attr(self) -> str:
        return self.name.replace(".", "_")


KNOBS: tuple[Knob, ...] = (
    Knob("vendor", enum(Vendor), "CPU vendor: intel (Intel-like) or amd (AMD or Hygon)"),
    Knob("guest", enum(Guest), "PV guest kind", guest_layer=True),
    Knob("guest_mode", enum(GuestMode), "guest kernel or user mode", guest_layer=True),
    Knob("mode", enum(CodeMode), "code mode of the executing segment"),
    Knob("cpl", DPL, "current privilege level (derived from guest and guest_mode in Xen specs)"),
    Knob("insn", enum(Insn), "the instruction executed"),
    Knob("vector", VECTOR, "N of INT $N"),
    Knob("prefix", enum(Prefix), "prefix form of INT $N or SYSCALL"),
    Knob("of", BOOL, "RFLAGS.OF (for INTO)"),
    Knob("bound.in_range", BOOL, "BOUND: the index is within the bounds"),
    Knob("gate.table", enum(GateTable), "far CALL: the selector's table (TI bit)"),
    Knob("gate.index", Domain(lo=0, hi=8191), "far CALL: the selector's descriptor index"),
    Knob("gate.rpl", DPL, "far CALL: the selector's RPL"),
    Knob("gate.in_limit", BOOL, "far CALL: the selector is within the GDT/LDT limit"),
    Knob("gate.present", BOOL, "far CALL: the call gate's present bit as the guest wrote it"),
    Knob("gate.dpl", DPL, "far CALL: the call gate's DPL as the guest wrote it"),
    Knob("cb.syscall", BOOL, "guest registered a syscall callback", guest_layer=True),
    Knob("cb.syscall32", BOOL, "guest registered a syscall32 callback", guest_layer=True),
    Knob("cb.sysenter", BOOL, "guest registered a sysenter callback", guest_layer=True),
    Knob("debugger", BOOL, "a debugger (gdbsx) is attached to the domain", guest_layer=True),
    Knob("sig_read_fault", BOOL,
         "reading the 5-byte forced-emulation signature at %rip faults "
         "(the instruction sits within 5 bytes of an unreadable page)", guest_layer=True),
    Knob("delivery", enum(Delivery), "event delivery: idt, or fred (CR4.FRED set)", system=True),
    Knob("abi", enum(Abi), "the account of Xen's behaviour: code (Xen's source) or doc (pv-traps.rst)",
         system=True, guest_layer=True),
    Knob("swint_emul", enum(SwintEmul),
         "Xen's emulation of a permitted INT $N: plus2 (rip += 2, before commit a934a600c4) "
         "or decoded (the instruction's length; REX-prefixed: #GP)", system=True, guest_layer=True),
    Knob("efer.sce", BOOL, "EFER.SCE: SYSCALL enabled", system=True),
    Knob("sysenter_cs", enum(SysenterCS), "MSR_SYSENTER_CS null or not", system=True),
    Knob("gate_audit", BOOL,
         "Xen's descriptor audit clears the DPL of present guest call gates", system=True),
)

KNOB = {k.name: k for k in KNOBS}


@dataclass(frozen=True)
class Table:
    """A per-vector family of knobs: `idt.N.dpl`, `tt.N.present`, ..."""

    name: str
    fields: dict[str, Domain]
    help: str
    system: bool = False
    guest_layer: bool = False

    def knob_name(self, vector: int, field: str) -> str:
        return f"{self.name}.{vector:#04x}.{field}"


TABLES: tuple[Table, ...] = (
    Table("idt", {"present": BOOL, "dpl": DPL, "type": enum(GateType), "entry": enum(Entry)},
          "Xen's IDT gate for vector N", system=True),
    Table("tt", {"present": BOOL, "dpl": DPL},
          "the guest's virtual trap table entry N (present = non-null handler; dpl = vDPL)",
          guest_layer=True),
)

TABLE = {t.name: t for t in TABLES}


def domain_of(name: str) -> Domain:
    """The domain of a knob (`efer.sce`) or a table entry (`tt.0x80.dpl`)."""
    if name in KNOB:
        return KNOB[name].domain
    table, _, field = name.split(".")
    return TABLE[table].fields[field]


# --- outcome fields ----------------------------------------------------------

OPT_VECTOR = Domain(lo=0, hi=255, optional=True)
OPT_EC = Domain(lo=0, hi=0xFFFF, optional=True)

#: Fields of the hardware outcome, as `hw.<field>` in invariants and JSON.
HW_FIELDS: dict[str, Domain] = {
    "event": enum(HwEvent),
    "vector": OPT_VECTOR,
    "error_code": OPT_EC,
    "source": enum(Source),
    "kind": enum(Kind),
    "msr": enum(Msr),
    "gate_type": enum(GateType),
}

#: Fields of the guest-visible outcome, as `guest.<field>`.
GUEST_FIELDS: dict[str, Domain] = {
    "event": enum(GuestEvent),
    "vector": OPT_VECTOR,
    "error_code": OPT_EC,
    "type": enum(Source),
    "kind": enum(Kind),
    "callback": enum(Callback),
    "rip": enum(Rip),
    "masked_by": enum(MaskFlag),
}

# Architectural vector numbers (SDM Vol.3A Table 6-1).
DE, DB, NMI, BP, OF, BR, UD, NM, DF = 0, 1, 2, 3, 4, 5, 6, 7, 8
TS, NP, SS, GP, PF, MC = 10, 11, 12, 13, 14, 18
