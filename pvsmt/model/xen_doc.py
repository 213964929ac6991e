"""Xen as docs/guest-guide/x86/pv-traps.rst states it: the documented guest-visible ABI.

The document (added by Xen commit 31cbb8e2a5, in 4.22.0; summarised with its line
numbers in shared/reference/xen-abi.md section 1, and quoted up to L60 by the
review in shared/seed/) promises the same guest behaviour under IDT and FRED
delivery (L74-75), except how far a fault Xen makes up rewinds %rip (L112-122).
So this model decides on the instruction and the guest's registrations, not on
the event the CPU raised, and reads `delivery` only for the rewind length.

Where the document does not say something, the outcome leaves it open:
`GuestOutcome.unspecified` names the fields it does not state (`ALL_UNSPECIFIED`
when it says nothing at all), so that `pvsmt diff` reports them as unspecified
instead of as differences.  The document never mentions event masking, so
`masked_by` is open in every outcome that bounces to the guest (an exception or a
callback); with no bounce there is nothing to mask.  Each rule says which silence
it reads.

Line numbers are those of the merged .rst as the reference gives them (L1-43
are also those of the v4 patch quoted in the seed; after L43 the merged file has
four more lines than v4, the BOUND note at L45-46).  Where the reference gives
only a section's range, the range is cited.
"""

from __future__ import annotations

from .vocab import (BP, BR, DB, GP, NONE, OF, UD, Callback, CodeMode, Delivery, GateTable, Guest, GuestEvent,
                     Kind, MaskFlag, Rip, Source, SysenterCS, Vendor)
from .hardware import selector_ec
from .outcome import ALL_UNSPECIFIED, GuestOutcome, HwOutcome, unspecified
from .rules import Rule, State, case
from .xen_idt import kernel, permitted, rewound_by_2  # the public header's vDPL rule is permit_softint

DOC = "pv-traps.rst"
HEADER = "xen/include/public/arch-x86/xen.h L117-137 (trap_info flags: vDPL 0 nobody, 1-2 kernel, 3 everyone)"
SDM = "SDM Vol.3A 'Exception and Interrupt Reference'"

R = Rule

# ---- silence ------------------------------------------------------------------------
SILENT_INT80_VDPL = R(
    "doc.int80.vdpl_denies",
    "INT $0x80 with a handler in TT[0x80] whose vDPL {dpl} does not permit guest {mode} mode: the document "
    "describes 0x80 only as a DPL3 fast path and does not say whether the vDPL is checked",
    f"{DOC} L59-60, L74-75; reference 1.1 item 1 (IDT ignores the vDPL, FRED honours it)")
SILENT_GATE_PV32 = R(
    "doc.callgate.pv32",
    "far CALL through a PV32 guest's GDT call gate: the gate is forced to DPL0, so the CALL #GPs and 'can be "
    "emulated'; the document states no check and no result of the emulation",
    f"{DOC} L49-75 (Xen's configuration: guest call gates), L124-126")
SILENT_GATE_LDT = R(
    "doc.callgate.ldt",
    "far CALL through a call gate in the LDT: the document speaks of gates in the GDT only",
    f"{DOC} L27, L49-75, L124-126; reference 1.1 item 4 (Xen audits and emulates LDT gates too)")
SILENT_GATE_NONE = R(
    "doc.callgate.no_gate",
    "far CALL with a null selector or one beyond the GDT limit references no gate: the document does not say",
    f"{DOC} L27 (CALL far referencing a gate in the GDT)")
SILENT_GATE_UNAUDITED = R(
    "doc.callgate.unaudited",
    "call gates not forced to DPL0 (gate_audit=0): the document describes only Xen's audit, which forces them",
    f"{DOC} L49-75 (Xen's configuration: guest call gates forced to DPL0)")
SILENT_SYSCALL_KERNEL = R(
    "doc.syscall.kernel",
    "SYSCALL from guest kernel mode: the document registers the syscall/syscall32 callbacks and says nothing "
    "of SYSCALL executed by the guest kernel itself (hypercall or callback)",
    f"{DOC} L36-38, L78-100; reference 1.1 item 6")
SILENT_SYSENTER_KERNEL = R(
    "doc.sysenter.kernel",
    "SYSENTER from guest kernel mode: the document registers the sysenter callback and says nothing of "
    "SYSENTER executed by the guest kernel itself",
    f"{DOC} L40-43, L72, L78-100; reference 6 rows 33-34")
SILENT_DEBUGGER = R(
    "doc.debugger",
    "a debugger is attached: the document says nothing about debuggers (Xen pauses the domain in kernel "
    "mode), so what the guest sees of {insn} is not stated, in either guest mode",
    f"{DOC} (no mention of debuggers); reference 3.11")
SILENT_BOUND_64 = R(
    "doc.bound.long64",
    "byte 0x62 in 64-bit code: there it is not BOUND (it #UDs or is the EVEX prefix); the document does not say",
    f"{DOC} L45-46 (BOUND as a pure hardware fault); reference 3.10, 6 row 43")
SILENT_SWINT_MISSING = R(
    "doc.sw_int.missing_handler",
    "the emulated INT ${vector:#04x} is permitted but TT[{vector:#04x}] has no handler: the document calls a "
    "missing exception handler terminal and says nothing of a missing handler for a vector above 0x1f",
    f"{DOC} L78-85")
SILENT_FAULT_HANDLERS = R(
    "doc.turned_back.no_handler",
    "{what} is turned back into a fault, but the document does not say which; the guest lacks a handler for "
    "#UD or #GP, the faults it names for these instructions, so the fault may be terminal: not stated",
    f"{DOC} L112-122, L78-85 (a missing exception handler is terminal); reference 1.1 item 3")

# ---- what the document states -------------------------------------------------------
INSN_INT3 = R("doc.int3", "INT3 (CC) generates #BP; vector 3 is DPL3 so it works from userspace",
              f"{DOC} L22, L56-57")
INSN_INT_3 = R("doc.int_3", "INT $3 (CD 03) cannot be told apart from INT3: it is treated as the #BP exception, "
               "so TT[3]'s vDPL does not matter", f"{DOC} L103-110")
INSN_INT_4 = R("doc.int_4", "INT $4 (CD 04) cannot be told apart from INTO: it is treated as the #OF exception "
               "whatever OF and the code mode, so TT[4]'s vDPL does not matter", f"{DOC} L103-110")
INSN_INT_N = R("doc.int_n", "INT $N (CD ib) invokes an arbitrary IDT gate, checking the gate DPL", f"{DOC} L29-30")
INSN_INTO = R("doc.into", "INTO (CE)", f"{DOC} L24-25")
INSN_INT1 = R("doc.int1", "INT1/ICEBP (F1) generates #DB and does not check the gate DPL: usable from userspace",
              f"{DOC} L32-34")
INSN_CALL = R("doc.callgate", "far CALL through a call gate", f"{DOC} L27, L29-30")
INSN_SYSCALL = R("doc.syscall", "SYSCALL (0F 05)", f"{DOC} L36-38")
INSN_SYSENTER = R("doc.sysenter", "SYSENTER (0F 34)", f"{DOC} L40-43")
INSN_BOUND = R("doc.bound", "BOUND (62 /r)", f"{DOC} L45-46")
INSN_UD = R("doc.ud_insn", "{insn} raises #UD, a pure hardware fault the document leaves to the trap table",
            f"{DOC} L45-46, L78-85; seed review (Jan Beulich on the UD<n> family); SDM Vol.2B 'UD'")

INT80 = R("doc.int80", "INT $0x80: vector 0x80 is DPL3, the legacy system call fast path", f"{DOC} L59-60")
INT80_FAST = R("doc.int80.fast", "INT $0x80 with a handler in TT[0x80] whose vDPL {dpl} permits guest {mode} mode: "
               "delivered to it as a software interrupt (a trap)", f"{DOC} L59-60; {HEADER}")
INT80_PRESENT = R("doc.int80.handler", "the guest has a handler in TT[0x80]", f"{DOC} L59-60, L78-85")
INT80_ABSENT = R("doc.int80.absent", "INT $0x80 with no handler in TT[0x80] (disabled by guest configuration): "
                 "turned back into a fault", f"{DOC} L112-122")
INT82 = R("doc.int82", "INT $0x82 from the PV32 kernel (CPL1): vector 0x82 is DPL1, a hypercall",
          f"{DOC} L49-75 (Xen's configuration: 0x82 with PV32)")
EMULATE = R("doc.int_n.emulate", "vector {vector:#04x} is DPL0 (0x82 too, except for the PV32 kernel), so "
            "INT ${vector:#04x} #GPs and Xen emulates it against TT[{vector:#04x}]'s vDPL (any prefix form: "
            "the document does not mention prefixes)", f"{DOC} L52-54; L49-75 (0x82 behaves like any other "
            "vector for PV32 user code and PV64)")
VDPL_ALLOW = R("doc.vdpl.allow", "TT[{vector:#04x}] vDPL {dpl} permits guest {mode} mode: the emulated INT "
               "${vector:#04x} delivers software interrupt {vector:#04x} (a trap, no error code)",
               f"{DOC} L52-54; {HEADER}")
VDPL_DENY = R("doc.vdpl.deny", "TT[{vector:#04x}] vDPL {dpl} does not permit guest {mode} mode: the emulated "
              "gate check fails as the hardware's would, #GP({ec:#x}) (IDT-format error code) as a fault",
              f"{DOC} L29-30, L52-54; {HEADER}; SDM Vol.3A 'Error Code'")
INTO_64 = R("doc.into.long64", "INTO in 64-bit code: #UD", f"{DOC} L24-25")
INTO_OF0 = R("doc.into.of0", "INTO with OF=0 generates nothing", f"{DOC} L24-25")
INTO_OF1 = R("doc.into.of1", "INTO in compatibility mode with OF=1 generates #OF; vector 4 is DPL3 so it works "
             "from userspace", f"{DOC} L24-25, L56-57")
GATE_PV64 = R("doc.callgate.pv64", "PV64 GDT call gate: forced to DPL0, so the CALL #GPs (error code the gate "
              "selector {ec:#x}); there is no emulation for PV64, so the guest gets the #GP",
              f"{DOC} L29-30, L49-75 (guest call gates forced to DPL0), L124-126")
SYSCALL_SCE0 = R("doc.syscall.sce0", "SYSCALL with EFER.SCE clear: #UD (the document says Xen always sets it)",
                 f"{DOC} L36-37, L71")
SYSCALL_INTEL_COMPAT = R("doc.syscall.intel_compat", "SYSCALL outside 64-bit mode on an Intel part: #UD "
                         "(in guest kernel or user mode)", f"{DOC} L38")
SYSCALL_USER64 = R("doc.syscall.user64", "SYSCALL from 64-bit user code: the syscall callback", f"{DOC} L78-100")
SYSCALL_USER32 = R("doc.syscall.user32", "SYSCALL from 32-bit user code (AMD): the syscall32 callback",
                   f"{DOC} L78-100")
SYSENTER_AMD = R("doc.sysenter.amd", "SYSENTER on an AMD part is unusable in long mode: #UD", f"{DOC} L42-43")
SYSENTER_NULL = R("doc.sysenter.null_cs", "SYSENTER with a NUL MSR_SYSENTER_CS (IDT delivery): #GP(0) "
                  "(the document says Xen enables SYSENTER where it is usable)", f"{DOC} L40-42, L72; SDM Vol.2B "
                  "'SYSENTER'")
SYSENTER_USER = R("doc.sysenter.user", "SYSENTER from user code on an Intel part: the sysenter callback",
                  f"{DOC} L72, L78-100")
CALLBACK = R("doc.callback", "bounce to the registered {callback} callback; the document does not describe the "
             "callback's frame{frame}", f"{DOC} L78-100")
CALLBACK_MISSING = R("doc.callback.missing", "no {callback} callback (disabled by guest configuration): "
                     "turned back into a fault", f"{DOC} L112-122")
TURNED_BACK_IDT = R("doc.turned_back.idt", "{what} turned back into a fault with IDT delivery: %rip is rewound "
                    "only by the un-prefixed instruction length; which fault (vector, error code) is not stated",
                    f"{DOC} L112-122; reference 1.1 item 3")
TURNED_BACK_FRED = R("doc.turned_back.fred", "{what} turned back into a fault with FRED delivery: %rip is rewound "
                     "by the full instruction length; which fault (vector, error code) is not stated",
                     f"{DOC} L112-122; reference 1.1 item 3")
BOUND_IN = R("doc.bound.in_range", "BOUND with the index in range: no fault, nothing happens", f"{DOC} L45-46")
BOUND_OUT = R("doc.bound.out_of_range", "BOUND out of range: #BR, a pure hardware fault", f"{DOC} L45-46")
UD_FAULT = R("doc.ud", "#UD is delivered through TT[6] as a fault; the document does not mention Xen reading a "
       "forced-emulation signature at %rip, so #UD stays #UD (Xen's #PF quirk, reference 6 row 40, shows as "
       "a difference)", f"{DOC} L78-85; {SDM} (#UD)")
NO_DEBUGGER = R("doc.no_debugger", "no debugger attached", f"{DOC} L78-85")
TT_MISSING = R("doc.tt.missing", "TT[{vector:#04x}] has no handler: a missing exception handler is terminal, like "
               "a triple fault: the domain crashes", f"{DOC} L78-85 (L83-85)")
BOUNCE = R("doc.bounce", "delivered through TT[{vector:#04x}]: {type} {kind}, error code {ec:#x}; the document "
           "does not say whether events are masked", f"{DOC} L78-85; {SDM}")

#: The document never mentions event masking (TT flags bit 2, the callbacks' flags): open
#: wherever the guest gets a frame (an exception or a callback).  Without a bounce (no
#: event, a hypercall, a domain crash) nothing is masked: masked_by is none, as in the code.
MASK_OPEN = unspecified("masked_by")
BOUNCES = (GuestEvent.EXCEPTION, GuestEvent.CALLBACK)


def D(event: GuestEvent, vector=NONE, error_code=NONE, type=Source.NONE, kind=Kind.NONE,
      callback=Callback.NONE, rip=Rip.NONE, open_=0) -> GuestOutcome:
    """A documented outcome; `open_` names further fields the document leaves open."""
    mask = MASK_OPEN if event in BOUNCES else 0
    return GuestOutcome(event, vector, error_code, type, kind, callback, rip, MaskFlag.NONE, mask | open_)


def silent() -> GuestOutcome:
    """The document says nothing: every field is open (the values shown are placeholders)."""
    return GuestOutcome(GuestEvent.UNMODELLED, unspecified=ALL_UNSPECIFIED)


# The instruction's own step: `doc_event` (instructions.py) dispatches each instruction by its row.

def int3(s: State) -> GuestOutcome:
    return debug_trap(s, BP)


def int1(s: State) -> GuestOutcome:
    return debug_trap(s, DB)


def debug_trap(s: State, vector: int) -> GuestOutcome:
    """#BP (INT3, INT $3) and #DB (ICEBP): traps through the trap table, vDPL not consulted."""
    o = s.ops
    return o.decide(
        case(s.debugger, SILENT_DEBUGGER, silent, insn=s.insn),
        case(True, NO_DEBUGGER, lambda: bounce(s, vector, NONE, Source.HW_EXC, Kind.TRAP)),
    )


def int_n_event(s: State) -> GuestOutcome:
    o = s.ops
    v = s.vector
    return o.decide(
        case(v == BP, INSN_INT_3, lambda: debug_trap(s, BP)),
        case(v == OF, INSN_INT_4, lambda: bounce(s, OF, NONE, Source.HW_EXC, Kind.TRAP)),
        case(v == 0x80, INT80, lambda: int80(s)),
        case(o.all(v == 0x82, s.guest == Guest.PV32, kernel(s)), INT82, lambda: D(GuestEvent.HYPERCALL, rip=Rip.NEXT)),
        case(True, EMULATE, lambda: emulate_int(s, v), vector=v),
    )


def emulate_int(s: State, vector) -> GuestOutcome:
    """INT $N against the vDPL: software interrupt N, or the #GP a DPL0 gate gives."""
    o = s.ops
    vdpl = s.tt("dpl", vector)
    ec = vector * 8 + 2
    why = dict(vector=vector, dpl=vdpl, mode=s.guest_mode, ec=ec)
    return o.decide(
        case(permitted(s, vdpl), VDPL_ALLOW, lambda: software_interrupt(s, vector), **why),
        case(True, VDPL_DENY, lambda: bounce(s, GP, ec, Source.HW_EXC, Kind.FAULT), **why),
    )


def software_interrupt(s: State, vector) -> GuestOutcome:
    """Software interrupt N through TT[N]; a missing handler is terminal for an exception vector only."""
    o = s.ops
    missing = o.not_(s.tt("present", vector))
    return o.decide(
        case(o.all(missing, vector < 32), TT_MISSING, lambda: D(GuestEvent.DOMAIN_CRASH), vector=vector),
        case(missing, SILENT_SWINT_MISSING, silent, vector=vector),
        case(True, BOUNCE, lambda: D(GuestEvent.EXCEPTION, vector, NONE, Source.SW_INT, Kind.TRAP, rip=Rip.NEXT),
             vector=vector, type=Source.SW_INT, kind=Kind.TRAP, ec=NONE),
    )


def int80(s: State) -> GuestOutcome:
    o = s.ops
    return o.decide(
        case(o.not_(s.tt("present", 0x80)), INT80_ABSENT, lambda: turned_back(s, "INT $0x80")),
        case(True, INT80_PRESENT, lambda: int80_handler(s)),
    )


def int80_handler(s: State) -> GuestOutcome:
    o = s.ops
    vdpl = s.tt("dpl", 0x80)
    why = dict(dpl=vdpl, mode=s.guest_mode)
    return o.decide(
        case(permitted(s, vdpl), INT80_FAST,
             lambda: D(GuestEvent.EXCEPTION, 0x80, NONE, Source.SW_INT, Kind.TRAP, rip=Rip.NEXT), **why),
        case(True, SILENT_INT80_VDPL, silent, **why),
    )


def into(s: State) -> GuestOutcome:
    o = s.ops
    return o.decide(
        case(s.mode == CodeMode.LONG64, INTO_64, lambda: invalid_op(s)),
        case(o.not_(s.of), INTO_OF0, lambda: D(GuestEvent.NONE, rip=Rip.NEXT)),
        case(True, INTO_OF1, lambda: bounce(s, OF, NONE, Source.HW_EXC, Kind.TRAP)),
    )


def call_gate(s: State) -> GuestOutcome:
    o = s.ops
    ec = selector_ec(s)
    return o.decide(
        case(o.not_(s.gate_audit), SILENT_GATE_UNAUDITED, silent),
        case(s.gate_table == GateTable.LDT, SILENT_GATE_LDT, silent),
        case(o.any(s.gate_index == 0, o.not_(s.gate_in_limit)), SILENT_GATE_NONE, silent),
        case(s.guest == Guest.PV32, SILENT_GATE_PV32, silent),
        case(True, GATE_PV64, lambda: bounce(s, GP, ec, Source.HW_EXC, Kind.FAULT), ec=ec),
    )


def syscall(s: State) -> GuestOutcome:
    o = s.ops
    return o.decide(
        case(o.not_(s.efer_sce), SYSCALL_SCE0, lambda: invalid_op(s)),
        case(o.all(s.vendor == Vendor.INTEL, s.mode == CodeMode.COMPAT), SYSCALL_INTEL_COMPAT,
             lambda: invalid_op(s)),
        case(kernel(s), SILENT_SYSCALL_KERNEL, silent),
        case(s.mode == CodeMode.LONG64, SYSCALL_USER64,
             lambda: callback(s, Callback.SYSCALL, s.cb_syscall, "SYSCALL")),
        case(True, SYSCALL_USER32, lambda: callback(s, Callback.SYSCALL32, s.cb_syscall32, "SYSCALL")),
    )


def sysenter(s: State) -> GuestOutcome:
    o = s.ops
    return o.decide(
        case(s.vendor == Vendor.AMD, SYSENTER_AMD, lambda: invalid_op(s)),
        case(o.all(s.delivery == Delivery.IDT, s.sysenter_cs == SysenterCS.NULL), SYSENTER_NULL,
             lambda: bounce(s, GP, 0, Source.HW_EXC, Kind.FAULT)),
        case(kernel(s), SILENT_SYSENTER_KERNEL, silent),
        case(True, SYSENTER_USER, lambda: callback(s, Callback.SYSENTER, s.cb_sysenter, "SYSENTER")),
    )


def callback(s: State, which: Callback, registered, what: str) -> GuestOutcome:
    """A registered callback, else the instruction is turned back into a fault.

    SYSCALL saves the address of the next instruction (in %rcx), so its callback
    is taken to report %rip after it.  SYSENTER saves no return address at all,
    and the document does not describe the callback frame: %rip is left open.
    """
    o = s.ops
    sysenter_ = which == Callback.SYSENTER
    rip, open_, frame = ((Rip.NONE, unspecified("rip"), " (%rip open: SYSENTER saves no return address)")
                         if sysenter_ else (Rip.NEXT, 0, " (%rip after SYSCALL, as SYSCALL saves it in %rcx)"))
    return o.decide(
        case(registered, CALLBACK, lambda: D(GuestEvent.CALLBACK, callback=which, rip=rip, open_=open_),
             callback=which, frame=frame),
        case(True, CALLBACK_MISSING, lambda: turned_back(s, what), callback=which),
    )


def turned_back(s: State, what: str) -> GuestOutcome:
    """INT $0x80, SYSCALL and SYSENTER disabled by guest configuration: a fault, %rip rewound.

    The document does not say which fault.  It names #UD (L36-37) and #GP (L29-30,
    L40-42) as the faults of these instructions; only if the guest has handlers for
    both is the fault surely delivered (a missing handler is terminal, L83-85).
    """
    o = s.ops
    handlers = o.all(s.tt("present", UD), s.tt("present", GP))
    fault = lambda rip: D(GuestEvent.EXCEPTION, type=Source.HW_EXC, kind=Kind.FAULT, rip=rip,  # noqa: E731
                          open_=unspecified("vector", "error_code"))
    return o.decide(
        case(o.not_(handlers), SILENT_FAULT_HANDLERS, silent, what=what),
        case(s.delivery == Delivery.IDT, TURNED_BACK_IDT,
             lambda: fault(rewound_by_2(s)), what=what),
        case(True, TURNED_BACK_FRED, lambda: fault(Rip.INSN), what=what),
    )


def bound(s: State) -> GuestOutcome:
    o = s.ops
    return o.decide(
        case(s.mode == CodeMode.LONG64, SILENT_BOUND_64, silent),
        case(s.bound_in_range, BOUND_IN, lambda: D(GuestEvent.NONE, rip=Rip.NEXT)),
        case(True, BOUND_OUT, lambda: bounce(s, BR, NONE, Source.HW_EXC, Kind.FAULT)),
    )


def invalid_op(s: State) -> GuestOutcome:
    """#UD: the plain fault, whatever `sig_read_fault` (the document knows no signature read)."""
    return s.ops.decide(case(True, UD_FAULT, lambda: bounce(s, UD, NONE, Source.HW_EXC, Kind.FAULT)))


def bounce(s: State, vector, error_code, type: Source, kind: Kind) -> GuestOutcome:
    """An exception through TT[vector]: %rip at the instruction (fault) or after it (trap)."""
    o = s.ops
    rip = Rip.INSN if kind == Kind.FAULT else Rip.NEXT
    return o.decide(
        case(o.not_(s.tt("present", vector)), TT_MISSING, lambda: D(GuestEvent.DOMAIN_CRASH), vector=vector),
        case(True, BOUNCE, lambda: D(GuestEvent.EXCEPTION, vector, error_code, type, kind, rip=rip),
             vector=vector, type=type, kind=kind, ec=error_code),
    )
