"""Xen with IDT event delivery: from the CPU's event to what the PV guest sees.

Sources: xen-project/xen master c447b7308b as summarised, with file and line,
in the project's reference notes (shared/reference/xen-abi.md sections 3, 6,
7 and the audit corrections of section 8).  Citations name Xen's file, lines
and symbol.
"""

from __future__ import annotations

from .vocab import (BP, BR, DB, DF, GP, NONE, NP, OF, PF, UD, Callback, Entry, Guest, GuestEvent,
                     GuestMode, HwEvent, Insn, Kind, MaskFlag, Msr, Prefix, Rip, Source, SwintEmul)
from .outcome import GuestOutcome, HwOutcome
from .rules import Rule, State, case

R = Rule
NOTHING = R("xen.none", "no event reaches Xen; the guest continues", "reference 6 row 8")
SHUTDOWN = R("xen.shutdown", "a triple fault resets the host", "SDM Vol.3A 'Interrupt 8 - Double Fault Exception'")
SW_AT_EXC = R("xen.idt.sw_at_exception",
              "INT ${vector:#04x} reached Xen's exception entry directly; Xen expects only the CPU "
              "to enter there (DPL0 gate) and its behaviour is not modelled",
              "Xen include/asm/gen-idt.h L38-70 (exception gates are DPL0 except 3 and 4)")
IRQ = R("xen.idt.irq",
        "INT ${vector:#04x} reached common_interrupt directly: Xen would treat it as external "
        "interrupt {vector:#04x}; not modelled",
        "Xen x86_64/entry.S L1299-1320 (autogen stubs); gen-idt.h L72-113 (DPL0)")
GATE_RAW = R("xen.callgate.raw",
             "the CPU transferred through a guest call gate without Xen: the guest runs at the "
             "gate target's privilege; not modelled",
             "Xen pv/descriptor-tables.c L246-258 (the audit exists to prevent this)")
INT3 = R("xen.int3", "entry_BP -> do_int3: #BP is bounced through TT[3]; TT[3]'s vDPL is not consulted",
         "Xen x86_64/entry.S L1046-1051, L923; traps.c L1381-1404 (do_int3), L1436-1440")
INT3_DEBUG = R("xen.int3.debugger", "do_int3 in guest kernel mode with a debugger attached: the domain is paused",
               "Xen traps.c L1381-1404 (do_int3, debugger_attached)")
OF_TRAP = R("xen.of", "entry_OF -> do_trap: #OF is bounced through TT[4]; the vDPL is not consulted",
            "Xen x86_64/entry.S L1053-1058, L926-931; traps.c L1315-1337 (do_trap)")
DB_TRAP = R("xen.db", "entry_DB -> handle_DB: #DB is bounced through TT[1] (DR6 merged); no vDPL check",
            "Xen x86_64/entry.S L1039-1044; traps.c L2071-2201 (handle_DB, pv_inject_DB)")
DB_DEBUG = R("xen.db.debugger", "handle_DB in guest kernel mode with a debugger attached: the domain is paused",
             "Xen traps.c L2071-2192 (handle_DB)")
BR_TRAP = R("xen.br", "entry_BR -> do_trap: #BR is bounced through TT[5]",
            "Xen x86_64/entry.S L1060-1065, L926-931; traps.c L1315-1337 (do_trap)")
NP_EXT = R("xen.np.ext", "do_trap: #NP({ec:#x}) with EXT set in guest context is fatal to Xen",
           "Xen traps.c L1319-1320 (do_trap, fatal_trap)")
NP_TRAP = R("xen.np", "do_trap: #NP({ec:#x}) is passed through to the guest",
            "Xen traps.c L1315-1337 (do_trap); reference 3.6")
DF_FATAL = R("xen.df", "#DF: Xen's double fault handler panics", "Xen traps.c (do_double_fault)")
UD_PLAIN = R("xen.ud", "no forced-emulation signature at %rip: #UD is passed to the guest",
             "Xen traps.c L1339-1350 (do_invalid_op); pv/emul-inv-op.c L15-72")
UD_AS_PF = R("xen.ud.sig_read_fault",
             "do_invalid_op: reading the 5-byte signature at %rip faults, so the guest gets #PF "
             "(error code 0, plus U in user mode) instead of #UD",
             "Xen pv/emul-inv-op.c L25-29, L35-40; traps.c L1345-1349; reference 6 row 40, 8.5")
OTHER_EXC = R("xen.exception.other", "exception {vector:#04x} from a guest instruction: not modelled",
              "reference 3.11")
GP_EXT = R("xen.gp.ext", "do_general_protection: EXT set in #GP({ec:#x}) is fatal to Xen",
           "Xen traps.c L1413-1414 (do_general_protection, fatal_trap)")
GP_IDT = R("xen.gp.idt", "do_general_protection: #GP({ec:#x}) names IDT vector {vector:#04x}: "
           "check TT[{vector:#04x}]'s vDPL", "Xen traps.c L1441-1452 (do_general_protection)")
VDPL_DENY = R("xen.vdpl.deny", "TT[{vector:#04x}] vDPL {dpl} does not permit guest {mode} mode: "
              "#GP({ec:#x}) is passed to the guest",
              "Xen include/asm/regs.h L18-19 (permit_softint); traps.c L1441-1452; "
              "public/arch-x86/xen.h L117-137")
VDPL_ALLOW = R("xen.vdpl.allow", "TT[{vector:#04x}] vDPL {dpl} permits guest {mode} mode: "
               "pv_emulate_sw_interrupt", "Xen include/asm/regs.h L18-19 (permit_softint); traps.c L1441-1452")
EMUL_PLUS2 = R("xen.swint.plus2", "do_general_protection (before commit a934a600c4): `regs->rip += 2`, "
                "then SW_INT {vector:#04x} is injected, whatever the instruction and its prefixes",
                "Xen RELEASE-4.17.0 traps.c L1703-1713, RELEASE-4.20.0 traps.c L1293-1303 "
                "(do_general_protection); reference 9.1")
EMUL_NOT_CD = R("xen.emul_swint.not_cd", "pv_emulate_sw_interrupt: the instruction is not CD ib "
                "({insn}): the original #GP({ec:#x}) is re-injected",
                "Xen pv/emul-priv-op.c L1412-1458 (pv_emulate_sw_interrupt)")
EMUL_REX = R("xen.emul_swint.rex", "pv_emulate_sw_interrupt never sets the address size, so a REX prefix "
             "decodes as the opcode: the original #GP({ec:#x}) is re-injected",
             "Xen pv/emul-priv-op.c L1426-1429 (contrast L1372, emul-gate-op.c L203); reference 8.1")
EMUL_OK = R("xen.emul_swint.ok", "pv_emulate_sw_interrupt: SW_INT {vector:#04x} is injected, %rip past "
            "the whole instruction", "Xen pv/emul-priv-op.c L1412-1458; commit a934a600c4 (4.22)")
GP_GATE = R("xen.gp.gate", "do_general_protection: PV32 with a selector error code {ec:#x}: pv_emulate_gate_op",
            "Xen traps.c L1453-1457; pv/emul-gate-op.c L163-407")
GP_ZERO = R("xen.gp.zero", "do_general_protection: #GP(0) is not a privileged operation Xen emulates: "
            "passed to the guest", "Xen traps.c L1458-1478 (pv_emulate_privileged_op, then inject)")
GP_PASS = R("xen.gp.pass", "do_general_protection: #GP({ec:#x}) is passed to the guest unchanged "
            "(no call-gate emulation for PV64)", "Xen traps.c L1453-1478; pv-traps.rst L124-126; XTF xsa-298")
GATE_NOT_CALL = R("xen.emul_gate.decode", "pv_emulate_gate_op: {insn} is not a far CALL/JMP: #GP({ec:#x})",
                  "Xen pv/emul-gate-op.c L163-407")
GATE_LIMIT = R("xen.emul_gate.limit", "pv_emulate_gate_op: the selector is beyond the table limit: #GP({ec:#x})",
               "Xen pv/emul-gate-op.c L16-72 (read_gate_descriptor)")
GATE_DPL = R("xen.emul_gate.dpl", "pv_emulate_gate_op: the guest's gate DPL {dpl} (ring-compressed) < "
             "max(CPL {cpl}, RPL {rpl}): #GP({ec:#x})",
             "Xen pv/emul-gate-op.c L163-407; pv/descriptor-tables.c L246-258 (DPL stashed in the RPL)")
GATE_NP = R("xen.emul_gate.not_present",
            "pv_emulate_gate_op: the not-present gate's DPL field is {dpl}, not 0 (the audit never rewrote it), "
            "so read_gate_descriptor rejects it: #GP({ec:#x})",
            "Xen pv/emul-gate-op.c L16-72 (read_gate_descriptor rejects a gate with a non-zero DPL field), "
            "L163-407; reference 3.6")
GATE_NP_DPL0 = R("xen.emul_gate.not_present_dpl0",
                 "pv_emulate_gate_op: a not-present gate written with DPL 0 takes its DPL from the target "
                 "selector's RPL (not modelled): taken as #GP({ec:#x})",
                 "Xen pv/emul-gate-op.c L16-72 (read_gate_descriptor), L163-407; reference 3.6",
                 uncertain="a not-present PV32 call gate written with DPL 0 gives #GP(ec) or #NP(ec) "
                           "depending on its target selector's RPL, which pvsmt does not model")
GATE_EMUL = R("xen.emul_gate.ok", "pv_emulate_gate_op emulates the far CALL to the gate's target "
              "(target segment and stack assumed valid)", "Xen pv/emul-gate-op.c L163-407")
INT80_FAST = R("xen.int80.fast", "entry_int80: TT[0x80] is non-null: bounced through TT[0x80] as a trap; "
               "its vDPL is not checked", "Xen x86_64/entry.S L478-516 (entry_int80); reference 1.1 item 1")
INT80_SLOW = R("xen.int80.slow", "entry_int80: TT[0x80] is null: the slow path fakes #GP(0x402) with "
               "%rip -= 2", "Xen x86_64/entry.S L518-533 (int80_slow_path); XTF xsa-259 L27-39")
INT82_CALL = R("xen.int82.hypercall", "entry_int82 from the PV32 kernel: a compat hypercall",
               "Xen x86_64/compat/entry.S L14-36; pv/hypercall.c L183-189 (do_entry_int82)")
INT82_OTHER = R("xen.int82.other", "entry_int82 reached by something other than the PV32 kernel: not modelled",
                "Xen include/asm/gen-idt.h L87-91 (the gate is DPL1)")
LSTAR_KERNEL = R("xen.lstar.kernel", "lstar_enter from the PV64 kernel: a hypercall",
                 "Xen x86_64/entry.S L325-331 (lstar_enter)")
LSTAR_USER = R("xen.lstar.user", "lstar_enter from PV64 user mode: switch_to_kernel, syscall callback",
               "Xen x86_64/entry.S L27-64 (switch_to_kernel)")
LSTAR_PV32 = R("xen.lstar.pv32", "LSTAR reached by a PV32 guest (which runs no 64-bit code): not modelled",
               "reference 0 (PV32 code is 32-bit)")
CSTAR_PV64 = R("xen.cstar.pv64", "cstar_enter from PV64 (kernel mode not tested): switch_to_kernel, "
               "syscall32 callback, masked per the 64-bit syscall flag",
               "Xen x86_64/entry.S L335-375 (cstar_enter), L36-39 (switch_to_kernel reads "
               "VGCF_syscall_disables_events); reference 1.1 item 6")
CSTAR_PV32 = R("xen.cstar.pv32", "cstar_enter -> compat_syscall: syscall32 callback",
               "Xen x86_64/compat/entry.S L204-232 (compat_syscall)")
CB_BOUNCE = R("xen.callback", "bounce to the registered {callback} callback; the {mask} flag decides "
              "whether events are masked", "Xen x86_64/entry.S L27-64; compat/entry.S L204-247")
CB_MISSING_UD = R("xen.callback.none_ud", "no {callback} callback: #UD with %rip -= 2 (never turned into #PF)",
                  "Xen x86_64/entry.S L48-58 (commit ca6fcf4321); reference 7 item 4, 8.5")
CB_MISSING_GP = R("xen.callback.none_gp", "no {callback} callback: #GP(0)",
                  "Xen x86_64/compat/entry.S L216-227 (PV32 SYSCALL: eip -= 2); x86_64/entry.S L425-433 "
                  "(SYSENTER: the stripped frame, rip=0, no rewind); reference 1.1 item 2")
SYSENTER_K64 = R("xen.sysenter.pv64_kernel",
                 "sysenter_entry from the PV64 kernel: the bounce frame is built below RSP=0: domain crash",
                 "Xen x86_64/entry.S L545-566 (derived from the code; reference 6 row 33)",
                 uncertain="PV64 kernel-mode SYSENTER is derived from the code, not tested: "
                           "probably a domain crash, else the callback or #GP(0) as from user mode "
                           "(reference 3.8, row 33)")
SYSENTER_ENTRY = R("xen.sysenter", "sysenter_entry: frame rip=0, cs=3; sysenter callback",
                   "Xen x86_64/entry.S L377-442 (sysenter_entry); compat/entry.S L234-247")
TT_NULL = R("xen.bounce.null", "TT[{vector:#04x}] is null: the bounce has no target and the domain crashes",
            "Xen pv/traps.c L25-99 (pv_inject_event 'Unhandled'); x86_64/entry.S L629-634 "
            "(create_bounce_frame_bad_bounce_ip); compat/entry.S L317-323")
BOUNCE = R("xen.bounce", "bounced through TT[{vector:#04x}]: {type} {kind}, error code {ec:#x}",
           "Xen pv/traps.c L25-99 (pv_inject_event); x86_64/entry.S L539-641 (create_bounce_frame)")

ENTRY_IDT = R("xen.idt", "Xen is entered through IDT[{vector:#04x}]", "Xen x86_64/entry.S L1273-1335 (bsp_idt)")
ENTRY_EXC = R("xen.idt.exception", "IDT[{vector:#04x}] leads to handle_exception", "Xen gen-idt.h L38-70")
ENTRY_GP = R("xen.idt.gp", "entry_GP -> do_general_protection(#GP({ec:#x}))",
             "Xen x86_64/entry.S (entry_GP); traps.c L1407-1478")
ENTRY_UD = R("xen.idt.ud", "entry_UD -> do_invalid_op", "Xen x86_64/entry.S L1067-1072; traps.c L1339-1379")
ENTRY_NP = R("xen.idt.np", "entry_NP -> do_trap(#NP({ec:#x}))", "Xen traps.c L1315-1337 (do_trap)")
ENTRY_80 = R("xen.idt.int80", "IDT[0x80] leads to entry_int80", "Xen gen-idt.h L79-83")
ENTRY_82 = R("xen.idt.int82", "IDT[0x82] leads to entry_int82", "Xen gen-idt.h L87-91")
ENTRY_SYSCALL = R("xen.syscall", "SYSCALL enters Xen through its {msr} trampoline",
                  "Xen traps-setup.c L189-237 (legacy_syscall_init: LSTAR L209, CSTAR L224-227)")
ENTRY_SYSENTER = R("xen.sysenter.entry", "SYSENTER enters Xen at sysenter_entry",
                   "Xen traps-setup.c L215-221 (SYSENTER_EIP = sysenter_entry)")


def G(event: GuestEvent, vector=NONE, error_code=NONE, type=Source.NONE, kind=Kind.NONE,
      callback=Callback.NONE, rip=Rip.NONE, masked_by=MaskFlag.NONE) -> GuestOutcome:
    return GuestOutcome(event, vector, error_code, type, kind, callback, rip, masked_by)


#: The instruction completes, or a hypercall returns: the guest goes on after it.
def resumes(event: GuestEvent) -> GuestOutcome:
    return G(event, rip=Rip.NEXT)


def rewound_by_2(s: State):
    """`rip -= 2` from after a 2-byte opcode (CD 80, 0F 05): the first byte unless prefixed."""
    return s.ops.ite(s.prefix == Prefix.NONE, Rip.INSN, Rip.OPCODE)


def fault_rip(s: State, rewound: bool):
    """A fault's %rip: at the instruction, or where int80_slow_path's `rip -= 2` left it."""
    return rewound_by_2(s) if rewound else Rip.INSN


def at_insn(s: State):
    """%rip rewound by the whole instruction (FRED's `rip -= insnlen`)."""
    return Rip.INSN


def frame_zero(s: State):
    """SYSENTER's stripped frame: rip=0, nothing to rewind."""
    return Rip.ZERO


def kernel(s: State):
    return s.guest_mode == GuestMode.KERNEL


def xen_idt_event(s: State, hw: HwOutcome) -> GuestOutcome:
    """What the PV guest sees when the CPU raised `hw` (IDT delivery)."""
    o = s.ops
    return o.decide(
        case(hw.event == HwEvent.NONE, NOTHING, lambda: resumes(GuestEvent.NONE)),
        case(hw.event == HwEvent.SHUTDOWN, SHUTDOWN, lambda: G(GuestEvent.XEN_CRASH)),
        case(hw.event == HwEvent.SYSCALL, ENTRY_SYSCALL, lambda: syscall_entry(s, hw), msr=hw.msr),
        case(hw.event == HwEvent.SYSENTER, ENTRY_SYSENTER, lambda: sysenter_entry(s)),
        case(hw.event == HwEvent.CALL_GATE, GATE_RAW, lambda: G(GuestEvent.UNMODELLED)),
        case(True, ENTRY_IDT, lambda: idt_entry(s, hw), vector=hw.vector),
    )


def idt_entry(s: State, hw: HwOutcome) -> GuestOutcome:
    """Dispatch on the Xen entry code the IDT vector leads to."""
    o = s.ops
    entry = s.idt("entry", hw.vector)
    return o.decide(
        case(entry == Entry.INT80, ENTRY_80, lambda: int80(s)),
        case(entry == Entry.INT82, ENTRY_82, lambda: int82(s)),
        case(entry == Entry.IRQ, IRQ, lambda: G(GuestEvent.UNMODELLED), vector=hw.vector),
        case(True, ENTRY_EXC, lambda: exception_entry(s, hw), vector=hw.vector),
    )


def exception_entry(s: State, hw: HwOutcome) -> GuestOutcome:
    """handle_exception: the C handler for exception vector hw.vector."""
    o = s.ops
    v, ec = hw.vector, hw.error_code
    software = hw.source == Source.SW_INT
    return o.decide(
        case(o.all(software, v != BP, v != OF), SW_AT_EXC, lambda: G(GuestEvent.UNMODELLED), vector=v),
        case(v == BP, INT3, lambda: debug_event(s, BP, INT3_DEBUG)),
        case(v == OF, OF_TRAP, lambda: inject(s, OF, NONE, Source.HW_EXC, Kind.TRAP)),
        case(v == DB, DB_TRAP, lambda: debug_event(s, DB, DB_DEBUG)),
        case(v == GP, ENTRY_GP, lambda: general_protection(s, ec), ec=ec),
        case(v == UD, ENTRY_UD, lambda: invalid_op(s)),
        case(v == BR, BR_TRAP, lambda: inject(s, BR, NONE, Source.HW_EXC, Kind.FAULT)),
        case(v == NP, ENTRY_NP, lambda: not_present(s, ec), ec=ec),
        case(v == DF, DF_FATAL, lambda: G(GuestEvent.XEN_CRASH)),
        case(True, OTHER_EXC, lambda: G(GuestEvent.UNMODELLED), vector=v),
    )


def debug_event(s: State, vector: int, paused: Rule) -> GuestOutcome:
    """#BP and #DB: paused for an attached debugger in kernel mode, else a trap."""
    o = s.ops
    return o.decide(
        case(o.all(kernel(s), s.debugger), paused, lambda: G(GuestEvent.DOMAIN_PAUSED)),
        case(True, NO_DEBUGGER, lambda: inject(s, vector, NONE, Source.HW_EXC, Kind.TRAP)),
    )


NO_DEBUGGER = R("xen.no_debugger", "no debugger intercepts it: the exception is injected",
                "Xen traps.c L1381-1404, L2071-2192")


def not_present(s: State, ec) -> GuestOutcome:
    o = s.ops
    return o.decide(
        case(o.mod(ec, 2) == 1, NP_EXT, lambda: G(GuestEvent.XEN_CRASH), ec=ec),
        case(True, NP_TRAP, lambda: inject(s, NP, ec, Source.HW_EXC, Kind.FAULT), ec=ec),
    )


def invalid_op(s: State) -> GuestOutcome:
    o = s.ops
    pf_ec = lambda: o.ite(kernel(s), 0, 4)  # noqa: E731  (the U bit: read only on this path)
    return o.decide(
        case(s.sig_read_fault, UD_AS_PF, lambda: inject(s, PF, pf_ec(), Source.HW_EXC, Kind.FAULT)),
        case(True, UD_PLAIN, lambda: inject(s, UD, NONE, Source.HW_EXC, Kind.FAULT)),
    )


def general_protection(s: State, ec, rewound: bool = False) -> GuestOutcome:
    """do_general_protection, in the order Xen checks (traps.c L1407-1478).

    `rewound`: entered from int80_slow_path, which faked the #GP after `rip -= 2`
    (so %rip is at the CD byte, past any prefixes).
    """
    o = s.ops
    vector = o.div(ec, 8)
    rip = lambda: fault_rip(s, rewound)  # noqa: E731
    return o.decide(
        case(o.mod(ec, 2) == 1, GP_EXT, lambda: G(GuestEvent.XEN_CRASH), ec=ec),
        case(o.mod(o.div(ec, 2), 2) == 1, GP_IDT, lambda: soft_int(s, vector, ec, rewound), ec=ec, vector=vector),
        case(o.all(s.guest == Guest.PV32, ec != 0), GP_GATE, lambda: gate_op(s, ec), ec=ec),
        case(ec == 0, GP_ZERO, lambda: inject(s, GP, 0, Source.HW_EXC, Kind.FAULT, rip())),
        case(True, GP_PASS, lambda: inject(s, GP, ec, Source.HW_EXC, Kind.FAULT, rip()), ec=ec),
    )


def permitted(s: State, vdpl):
    """permit_softint: vDPL >= 1 in kernel mode, vDPL == 3 in user mode."""
    return s.ops.ite(kernel(s), vdpl >= 1, vdpl == 3)


def soft_int(s: State, vector, ec, rewound: bool = False) -> GuestOutcome:
    """The INT $N emulation path of do_general_protection."""
    o = s.ops
    vdpl = s.tt("dpl", vector)
    why = dict(vector=vector, dpl=vdpl, mode=s.guest_mode, ec=ec)
    deny = lambda: inject(s, GP, ec, Source.HW_EXC, Kind.FAULT, fault_rip(s, rewound))  # noqa: E731
    return o.decide(
        case(o.not_(permitted(s, vdpl)), VDPL_DENY, deny, **why),
        case(True, VDPL_ALLOW, lambda: emulate_int(s, vector, ec, rewound), **why),
    )


def emulate_int(s: State, vector, ec, rewound: bool = False) -> GuestOutcome:
    """Inject SW_INT N for a permitted INT $N, as the spec's release does it.

    Before a934a600c4 Xen adds 2 to %rip whatever the instruction; after it,
    pv_emulate_sw_interrupt decodes CD ib at %rip.  After int80_slow_path's
    `rip -= 2`, %rip is at the CD byte, so neither sees a prefix.
    """
    o = s.ops
    gp = lambda: inject(s, GP, ec, Source.HW_EXC, Kind.FAULT, fault_rip(s, rewound))  # noqa: E731
    return o.decide(
        case(s.swint_emul == SwintEmul.PLUS2, EMUL_PLUS2,
             lambda: inject(s, vector, NONE, Source.SW_INT, Kind.TRAP, plus2_rip(s, rewound)), vector=vector),
        case(s.insn != Insn.INT_N, EMUL_NOT_CD, gp, insn=s.insn, ec=ec),
        case(o.all(not rewound, s.prefix == Prefix.REX), EMUL_REX, gp, ec=ec),
        case(True, EMUL_OK, lambda: inject(s, vector, NONE, Source.SW_INT, Kind.TRAP), vector=vector),
    )


def plus2_rip(s: State, rewound: bool):
    """Where `regs->rip += 2` leaves %rip: after an unprefixed CD ib (or int80_slow_path's rewound
    one), else 2 bytes past the start of whatever faulted."""
    if rewound:
        return Rip.NEXT
    return s.ops.ite(s.ops.all(s.insn == Insn.INT_N, s.prefix == Prefix.NONE), Rip.NEXT, Rip.PLUS2)


def gate_op(s: State, ec) -> GuestOutcome:
    """pv_emulate_gate_op for a PV32 guest (emul-gate-op.c L163-407)."""
    o = s.ops
    gp = lambda: inject(s, GP, ec, Source.HW_EXC, Kind.FAULT)  # noqa: E731
    dpl = o.ite(s.gate_dpl < 1, 1, s.gate_dpl)  # ring compression for PV32
    return o.decide(
        case(s.insn != Insn.CALLGATE, GATE_NOT_CALL, gp, insn=s.insn, ec=ec),
        case(o.not_(s.gate_in_limit), GATE_LIMIT, gp, ec=ec),
        case(o.all(o.not_(s.gate_present), s.gate_dpl == 0), GATE_NP_DPL0, gp, ec=ec,
             alternatives=lambda: [inject(s, NP, ec, Source.HW_EXC, Kind.FAULT)]),
        case(o.not_(s.gate_present), GATE_NP, gp, ec=ec, dpl=s.gate_dpl),
        case(o.any(dpl < s.cpl, dpl < s.gate_rpl), GATE_DPL, gp, dpl=dpl, cpl=s.cpl, rpl=s.gate_rpl, ec=ec),
        case(True, GATE_EMUL, lambda: G(GuestEvent.CALL_GATE, rip=Rip.TARGET)),
    )


def int80(s: State) -> GuestOutcome:
    o = s.ops
    return o.decide(
        case(s.tt("present", 0x80), INT80_FAST, lambda: inject(s, 0x80, NONE, Source.SW_INT, Kind.TRAP)),
        case(True, INT80_SLOW, lambda: general_protection(s, 0x402, rewound=True)),
    )


def int82(s: State) -> GuestOutcome:
    o = s.ops
    return o.decide(
        case(o.all(s.guest == Guest.PV32, kernel(s)), INT82_CALL, lambda: resumes(GuestEvent.HYPERCALL)),
        case(True, INT82_OTHER, lambda: G(GuestEvent.UNMODELLED)),
    )


def syscall_entry(s: State, hw: HwOutcome) -> GuestOutcome:
    o = s.ops
    pv64 = s.guest == Guest.PV64
    lstar = hw.msr == Msr.LSTAR
    return o.decide(
        case(o.all(lstar, pv64, kernel(s)), LSTAR_KERNEL, lambda: resumes(GuestEvent.HYPERCALL)),
        case(o.all(lstar, pv64), LSTAR_USER,
             lambda: callback(s, Callback.SYSCALL, s.cb_syscall, UD, MaskFlag.SYSCALL, rewound_by_2)),
        case(lstar, LSTAR_PV32, lambda: G(GuestEvent.UNMODELLED)),
        case(pv64, CSTAR_PV64,  # switch_to_kernel reads the 64-bit flag (reference 1.1 item 6)
             lambda: callback(s, Callback.SYSCALL32, s.cb_syscall32, UD, MaskFlag.SYSCALL, rewound_by_2)),
        case(True, CSTAR_PV32,
             lambda: callback(s, Callback.SYSCALL32, s.cb_syscall32, GP, MaskFlag.SYSCALL32, rewound_by_2)),
    )


def sysenter_entry(s: State) -> GuestOutcome:
    return sysenter_bounce(s, SYSENTER_K64, SYSENTER_ENTRY, CALLBACK_RULES)


#: The rules of a callback bounce: registered, missing (#UD), missing (#GP(0)).
CALLBACK_RULES = (CB_BOUNCE, CB_MISSING_UD, CB_MISSING_GP)


def sysenter_bounce(s: State, pv64_kernel: Rule, user: Rule, rules) -> GuestOutcome:
    """SYSENTER as both entry paths (IDT's sysenter_entry, FRED's OTHER/2) handle it, with each path's rules:
    the PV64 kernel's frame lands below RSP=0 (UNCERTAIN), anyone else gets the callback or #GP(0)."""
    o = s.ops
    user_path = lambda: callback(s, Callback.SYSENTER, s.cb_sysenter, GP, MaskFlag.SYSENTER,  # noqa: E731
                                 frame_zero, rules)
    return o.decide(
        case(o.all(s.guest == Guest.PV64, kernel(s)), pv64_kernel, lambda: G(GuestEvent.DOMAIN_CRASH),
             # if the frame write below the 2^64 wrap did not fault, the bounce goes on as from user mode
             alternatives=lambda: [user_path()]),
        case(True, user, user_path),
    )


def callback(s: State, which: Callback, registered, missing: int, mask: MaskFlag, rip_missing,
             rules=CALLBACK_RULES) -> GuestOutcome:
    """Bounce to a registered callback, else the fault Xen substitutes (#UD or #GP(0)).

    `mask` is the registration flag that decides masking; `rip_missing(s)` where
    %rip points in the substituted fault's frame.  SYSENTER's frame has rip=0
    either way; a SYSCALL callback's has the return address.
    """
    o = s.ops
    bounce, missing_ud, missing_gp = rules
    ec = 0 if missing == GP else NONE
    rip = Rip.ZERO if which == Callback.SYSENTER else Rip.NEXT
    return o.decide(
        case(registered, bounce, lambda: G(GuestEvent.CALLBACK, callback=which, rip=rip, masked_by=mask),
             callback=which, mask=mask),
        case(True, missing_ud if missing == UD else missing_gp,
             lambda: inject(s, missing, ec, Source.HW_EXC, Kind.FAULT, rip_missing(s)), callback=which),
    )


def inject(s: State, vector, error_code, type: Source, kind: Kind, rip=None) -> GuestOutcome:
    """pv_inject_event: bounce through TT[vector]; a null entry crashes the domain.

    The frame's %rip is at the instruction for a fault and after it for a trap,
    unless the entry path moved it (`rip`).  TT[vector]'s IF flag decides masking.
    """
    o = s.ops
    if rip is None:
        rip = Rip.INSN if kind == Kind.FAULT else Rip.NEXT
    bounce = lambda: G(GuestEvent.EXCEPTION, vector, error_code, type, kind, rip=rip,  # noqa: E731
                       masked_by=MaskFlag.TT_IF)
    return o.decide(
        case(o.not_(s.tt("present", vector)), TT_NULL, lambda: G(GuestEvent.DOMAIN_CRASH), vector=vector),
        case(True, BOUNCE, bounce, vector=vector, type=type, kind=kind, ec=error_code),
    )
