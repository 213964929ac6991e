"""The CPU in long mode: from one instruction and the machine state to the event raised.

Sources: Intel SDM Vol.2A/2B instruction pages (INT n/INTO/INT3/INT1, CALL,
SYSCALL, SYSENTER, BOUND, UD), Intel SDM Vol.3A chapter "Interrupt and
Exception Handling" and AMD APM Vol.2/Vol.3 for the vendor differences.  The
sentences are ours; the section names locate the facts.
"""

from __future__ import annotations

from .vocab import (BP, BR, DF, GP, NONE, NP, OF, PF, UD, CodeMode, Delivery, GateTable,
                     HwEvent, Kind, Msr, Source, SysenterCS, Vendor)
from .outcome import HwOutcome
from .rules import Rule, State, case

SDM_INT = "SDM Vol.2A 'INT n/INTO/INT3/INT1', Operation, IA-32e mode"
SDM_PROT = "SDM Vol.3A 'Protection of Exception- and Interrupt-Handler Procedures'"
SDM_EC = "SDM Vol.3A 'Error Code' (EXT, IDT and TI bits)"
SDM_DF = "SDM Vol.3A 'Interrupt 8 - Double Fault Exception', Table 'Conditions for Generating a Double Fault'"

# Exceptions whose delivery failing yields #DF rather than a fresh #NP.
CONTRIBUTORY = (0, 10, 11, 12, 13)

R = Rule
INT3 = R("hw.int3", "INT3 (CC) raises #BP as a software exception, gate DPL checked",
         f"{SDM_INT}; pv-traps.rst L22")
INT_N = R("hw.int_n", "INT $N (CD ib) is a software interrupt, gate DPL checked",
          f"{SDM_INT}; {SDM_PROT}")
INTO_64 = R("hw.into.long64", "INTO is invalid in 64-bit mode: #UD",
            "SDM Vol.2A 'INTO' (64-bit mode: #UD); pv-traps.rst L24-25; Xen decode.c L652 (not_64bit)")
INTO_OF0 = R("hw.into.of0", "INTO with RFLAGS.OF=0 does nothing", "SDM Vol.2A 'INT n/INTO/INT3/INT1'")
INTO_OF1 = R("hw.into.of1", "INTO with RFLAGS.OF=1 raises #OF as a software exception, gate DPL checked",
             SDM_INT)
INT1 = R("hw.int1", "INT1/ICEBP (F1) raises #DB; the gate DPL is not checked",
         f"{SDM_PROT} (INT1 excluded from the DPL check); pv-traps.rst L32-34; XTF swint-emulation L36")
UD_INSN = R("hw.ud", "{insn} raises #UD", "SDM Vol.2B 'UD-Undefined Instruction'")
BOUND_64 = R("hw.bound.long64", "byte 0x62 in 64-bit mode is not BOUND: #UD",
             "SDM Vol.2A 'BOUND' (64-bit mode: #UD); Xen decode.c L649 (not_64bit)",
             uncertain="on AVX-512 hardware 0x62 is the EVEX prefix and may form an instruction "
                       "that executes instead of #UD (reference 3.10, row 43)")
BOUND_IN = R("hw.bound.in_range", "BOUND with the index in range does nothing", "SDM Vol.2A 'BOUND'")
BOUND_OUT = R("hw.bound.out_of_range", "BOUND with the index out of range raises #BR (fault)",
              "SDM Vol.2A 'BOUND'; pv-traps.rst L45-46")
SYSCALL_SCE = R("hw.syscall.sce0", "SYSCALL with EFER.SCE=0: #UD",
                "SDM Vol.2B 'SYSCALL' Operation; AMD APM Vol.3 'SYSCALL'; pv-traps.rst L36-37")
SYSCALL_INTEL_COMPAT = R("hw.syscall.intel_compat", "SYSCALL outside 64-bit mode on an Intel-like CPU: #UD",
                         "SDM Vol.2B 'SYSCALL' (CS.L must be 1); pv-traps.rst L38")
SYSCALL_LSTAR = R("hw.syscall.lstar", "SYSCALL from 64-bit code enters at MSR_LSTAR",
                  "SDM Vol.2B 'SYSCALL'; AMD APM Vol.2 'SYSCALL and SYSRET'")
SYSCALL_CSTAR = R("hw.syscall.cstar", "SYSCALL from compatibility mode (AMD-like) enters at MSR_CSTAR",
                  "AMD APM Vol.2 'SYSCALL and SYSRET' (CSTAR); AMD APM Vol.3 'SYSCALL'")
SYSENTER_AMD = R("hw.sysenter.amd_long", "SYSENTER in long mode on an AMD-like CPU: #UD",
                 "AMD APM Vol.3 'SYSENTER' (#UD in long mode); pv-traps.rst L42-43; XTF xsa-339 L17-18")
SYSENTER_NULL = R("hw.sysenter.null_cs", "SYSENTER with MSR_SYSENTER_CS[15:2]=0: #GP(0)",
                  "SDM Vol.2B 'SYSENTER' Operation; pv-traps.rst L41-42")
SYSENTER_OK = R("hw.sysenter.enter", "SYSENTER enters at MSR_SYSENTER_EIP", "SDM Vol.2B 'SYSENTER'")
GATE_NULL = R("hw.callgate.null", "far CALL with a null selector: #GP(0)", "SDM Vol.2A 'CALL' Operation")
GATE_LIMIT = R("hw.callgate.limit", "far CALL selector {sel:#06x} beyond the {table} limit: #GP({ec:#x})",
               "SDM Vol.2A 'CALL' Operation; XTF xsa-298 (LDT selector, no LDT: #GP(0x1004))")
GATE_AUDIT = R("hw.callgate.audited", "the gate is present, so Xen's audit cleared its DPL: the CPU sees DPL0",
               "Xen pv/descriptor-tables.c L246-258 (check_descriptor); pv-traps.rst L67-69")
GATE_AS_WRITTEN = R("hw.callgate.as_written", "the CPU sees the gate DPL as the guest wrote it ({dpl})",
                    "Xen pv/descriptor-tables.c L192-194 (not-present descriptors are not audited)")
GATE_DPL = R("hw.callgate.dpl", "call gate DPL {dpl} < max(CPL {cpl}, RPL {rpl}): #GP({ec:#x})",
             "SDM Vol.2A 'CALL' Operation (call gate DPL check)")
GATE_NP = R("hw.callgate.not_present", "call gate not present: #NP({ec:#x})",
            "SDM Vol.2A 'CALL' Operation; reference 3.6 (derived from Xen's code, no XTF test)")
GATE_OK = R("hw.callgate.transfer", "far CALL transfers through the call gate",
            "SDM Vol.2A 'CALL' Operation")
SW_DPL = R("hw.gate.dpl", "IDT[{vector:#04x}] DPL {dpl} < CPL {cpl}: #GP({ec:#x}) (IDT-format error code)",
           f"{SDM_PROT}; {SDM_EC}")
SW_NP = R("hw.gate.not_present", "IDT[{vector:#04x}] not present: #NP({ec:#x})", f"{SDM_INT}; {SDM_EC}")
DELIVER = R("hw.gate.deliver", "delivered through IDT[{vector:#04x}] ({gate_type} gate)", SDM_INT)
NESTED_NP = R("hw.nested.np",
              "IDT[{vector:#04x}] not present while delivering an exception: #NP({ec:#x}), EXT set",
              f"{SDM_EC}; XTF swint-emulation L217-221 (ICEBP: #NP with EXT)")
NESTED_DF = R("hw.nested.df", "a contributory fault while delivering exception {vector:#04x}: #DF(0)", SDM_DF)
NESTED_SHUTDOWN = R("hw.nested.shutdown", "IDT[0x08] not present while delivering #DF: shutdown (triple fault)",
                    SDM_DF)


FRED_SPEC = "Intel FRED specification (doc. 346446) 'Event Delivery'; Xen include/asm/x86-defns.h L224-230"
FRED = R("hw.fred.deliver", "FRED: delivered as a {source} event, vector {vector:#04x}: no IDT, no gate DPL "
         "or present check", f"{FRED_SPEC}; reference 2.5")
FRED_SYSCALL = R("hw.fred.syscall", "FRED: SYSCALL is delivered as an OTHER event, vector 1",
                 f"{FRED_SPEC}; Xen traps.c L2385-2437; reference 2.5")
FRED_SYSCALL_INTEL_COMPAT = R(
    "hw.fred.syscall.intel_compat", "FRED: SYSCALL outside 64-bit mode on an Intel-like CPU: #UD",
    "SDM Vol.2B 'SYSCALL'; reference 3.7 and 6 row 30",
    uncertain="Intel FRED hardware may deliver SYSCALL from compatibility mode as an OTHER/1 event "
              "instead of #UD; Xen's code copes with both (reference 3.7, row 30)")
FRED_SYSENTER = R("hw.fred.sysenter", "FRED: SYSENTER is delivered as an OTHER event, vector 2",
                  f"{FRED_SPEC}; Xen traps.c L2439-2467",
                  uncertain="init_fred never programs MSR_SYSENTER_CS; whether FRED applies the null-CS "
                            "#GP(0) check is not stated (reference 3.8, row 35)")
FRED_SYSENTER_AMD = R("hw.fred.sysenter.amd", "FRED on an AMD-like CPU: SYSENTER in long mode: #UD",
                      "AMD APM Vol.3 'SYSENTER'; reference 3.8, 6 row 31",
                      uncertain="Xen's code assumes FRED-capable AMD parts still #UD SYSENTER in long "
                                "mode (reference 3.8)")


def fred(s: State) -> object:
    return s.delivery == Delivery.FRED


def idt_ec(vector, ext: bool = False):
    """The error code naming IDT vector `vector`: (vector << 3) | IDT | EXT."""
    return vector * 8 + 2 + (1 if ext else 0)


INSN_INTO = R("hw.insn.into", "INTO (CE): #OF if RFLAGS.OF=1, outside 64-bit mode", SDM_INT)
INSN_CALL = R("hw.insn.callgate", "far CALL through a call gate", "SDM Vol.2A 'CALL' (far call, IA-32e mode)")
INSN_SYSCALL = R("hw.insn.syscall", "SYSCALL (0F 05)", "SDM Vol.2B 'SYSCALL'")
INSN_SYSENTER = R("hw.insn.sysenter", "SYSENTER (0F 34)", "SDM Vol.2B 'SYSENTER'")
INSN_BOUND = R("hw.insn.bound", "BOUND (62 /r, memory operand)", "SDM Vol.2A 'BOUND'")


# The instruction's own step: `cpu_event` (instructions.py) dispatches each instruction by its row.

def int3(s: State) -> HwOutcome:
    return software(s, BP, Source.SW_EXC)


def int_n(s: State) -> HwOutcome:
    return software(s, s.vector, Source.SW_INT)


def ud(s: State) -> HwOutcome:
    """UD0, UD1, UD2: #UD."""
    return exception(s, UD)


def into(s: State) -> HwOutcome:
    o = s.ops
    return o.decide(
        case(s.mode == CodeMode.LONG64, INTO_64, lambda: exception(s, UD)),
        case(o.not_(s.of), INTO_OF0, lambda: HwOutcome(HwEvent.NONE)),
        case(True, INTO_OF1, lambda: software(s, OF, Source.SW_EXC)),
    )


def bound(s: State) -> HwOutcome:
    o = s.ops
    return o.decide(
        case(s.mode == CodeMode.LONG64, BOUND_64, lambda: exception(s, UD),
             alternatives=lambda: [HwOutcome(HwEvent.NONE)]),  # an EVEX instruction executes
        case(s.bound_in_range, BOUND_IN, lambda: HwOutcome(HwEvent.NONE)),
        case(True, BOUND_OUT, lambda: exception(s, BR)),
    )


def syscall(s: State) -> HwOutcome:
    o = s.ops
    return o.decide(
        case(o.not_(s.efer_sce), SYSCALL_SCE, lambda: exception(s, UD)),
        case(o.all(fred(s), s.mode == CodeMode.COMPAT, s.vendor == Vendor.INTEL), FRED_SYSCALL_INTEL_COMPAT,
             lambda: exception(s, UD), alternatives=lambda: [HwOutcome(HwEvent.SYSCALL)]),
        case(fred(s), FRED_SYSCALL, lambda: HwOutcome(HwEvent.SYSCALL)),
        case(o.all(s.mode == CodeMode.COMPAT, s.vendor == Vendor.INTEL), SYSCALL_INTEL_COMPAT,
             lambda: exception(s, UD)),
        case(s.mode == CodeMode.LONG64, SYSCALL_LSTAR, lambda: HwOutcome(HwEvent.SYSCALL, msr=Msr.LSTAR)),
        case(True, SYSCALL_CSTAR, lambda: HwOutcome(HwEvent.SYSCALL, msr=Msr.CSTAR)),
    )


def sysenter(s: State) -> HwOutcome:
    o = s.ops
    return o.decide(
        case(o.all(fred(s), s.vendor == Vendor.AMD), FRED_SYSENTER_AMD, lambda: exception(s, UD),
             alternatives=lambda: [HwOutcome(HwEvent.SYSENTER)]),
        case(fred(s), FRED_SYSENTER, lambda: HwOutcome(HwEvent.SYSENTER),
             alternatives=lambda: [exception(s, GP, 0)]),
        case(s.vendor == Vendor.AMD, SYSENTER_AMD, lambda: exception(s, UD)),
        case(s.sysenter_cs == SysenterCS.NULL, SYSENTER_NULL, lambda: exception(s, GP, 0)),
        case(True, SYSENTER_OK, lambda: HwOutcome(HwEvent.SYSENTER)),
    )


def selector_ec(s: State):
    """The selector as an error code: index and TI; the RPL bits read as IDT=EXT=0."""
    return s.gate_index * 8 + s.ops.ite(s.gate_table == GateTable.LDT, 4, 0)


def far_call(s: State) -> HwOutcome:
    """Far CALL through a 64-bit call gate; the target code segment is assumed valid."""
    o = s.ops
    ec = selector_ec(s)
    where = dict(ec=ec, sel=ec + s.gate_rpl, table=s.gate_table)
    return o.decide(
        case(o.all(s.gate_table == GateTable.GDT, s.gate_index == 0), GATE_NULL, lambda: exception(s, GP, 0)),
        case(o.not_(s.gate_in_limit), GATE_LIMIT, lambda: exception(s, GP, ec), **where),
        case(o.all(s.gate_audit, s.gate_present), GATE_AUDIT, lambda: gate_checks(s, 0, ec)),
        case(True, GATE_AS_WRITTEN, lambda: gate_checks(s, s.gate_dpl, ec), dpl=s.gate_dpl),
    )


def gate_checks(s: State, dpl, ec) -> HwOutcome:
    """The call gate's DPL against CPL and RPL, then its present bit."""
    o = s.ops
    return o.decide(
        case(o.any(dpl < s.cpl, dpl < s.gate_rpl), GATE_DPL, lambda: exception(s, GP, ec),
             dpl=dpl, cpl=s.cpl, rpl=s.gate_rpl, ec=ec),
        case(o.not_(s.gate_present), GATE_NP, lambda: exception(s, NP, ec), ec=ec),
        case(True, GATE_OK, lambda: HwOutcome(HwEvent.CALL_GATE)),
    )


def software(s: State, vector, source: Source) -> HwOutcome:
    """INT n, INT3, INTO: the gate DPL is checked against CPL, then the present bit."""
    o = s.ops
    dpl = s.idt("dpl", vector)
    return o.decide(
        case(fred(s), FRED, lambda: HwOutcome(HwEvent.FRED, vector, NONE, source, Kind.TRAP),
             source=source, vector=vector),
        case(dpl < s.cpl, SW_DPL, lambda: exception(s, GP, idt_ec(vector)),
             vector=vector, dpl=dpl, cpl=s.cpl, ec=idt_ec(vector)),
        case(o.not_(s.idt("present", vector)), SW_NP, lambda: exception(s, NP, idt_ec(vector)),
             vector=vector, ec=idt_ec(vector)),
        case(True, DELIVER, lambda: delivered(s, vector, NONE, source, Kind.TRAP),
             vector=vector, gate_type=s.idt("type", vector)),
    )


def int1(s: State) -> HwOutcome:
    """ICEBP: no DPL check; a not-present gate gives #NP with EXT set."""
    o = s.ops
    return o.decide(
        case(fred(s), FRED, lambda: HwOutcome(HwEvent.FRED, 1, NONE, Source.PRIV_SW_EXC, Kind.TRAP),
             source=Source.PRIV_SW_EXC, vector=1),
        case(s.idt("present", 1), DELIVER, lambda: delivered(s, 1, NONE, Source.PRIV_SW_EXC, Kind.TRAP),
             vector=1, gate_type=s.idt("type", 1)),
        case(True, NESTED_NP, lambda: exception(s, NP, idt_ec(1, ext=True)), vector=1, ec=idt_ec(1, ext=True)),
    )


def exception(s: State, vector: int, error_code=NONE) -> HwOutcome:
    """Deliver hardware exception `vector` (a fault); a missing gate cascades."""
    o = s.ops
    return o.decide(
        case(fred(s), FRED, lambda: HwOutcome(HwEvent.FRED, vector, error_code, Source.HW_EXC, Kind.FAULT),
             source=Source.HW_EXC, vector=vector),
        case(s.idt("present", vector), DELIVER,
             lambda: delivered(s, vector, error_code, Source.HW_EXC, Kind.FAULT),
             vector=vector, gate_type=s.idt("type", vector)),
        missing_gate(s, vector),
    )


def missing_gate(s: State, vector: int):
    """The case taken when exception `vector` finds its gate not present."""
    if vector == DF:
        return case(True, NESTED_SHUTDOWN, lambda: HwOutcome(HwEvent.SHUTDOWN))
    if vector in CONTRIBUTORY or vector == PF:
        return case(True, NESTED_DF, lambda: exception(s, DF, 0), vector=vector)
    ec = idt_ec(vector, ext=True)
    return case(True, NESTED_NP, lambda: exception(s, NP, ec), vector=vector, ec=ec)


def delivered(s: State, vector, error_code, source: Source, kind: Kind) -> HwOutcome:
    return HwOutcome(HwEvent.IDT, vector, error_code, source, kind, gate_type=s.idt("type", vector))
