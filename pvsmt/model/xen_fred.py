"""Xen with FRED event delivery: `entry_from_pv` (xen/arch/x86/traps.c L2275-2482).

FRED mode exists for PV64 guests only (PV32 is disabled at boot).  Events arrive
typed (SW_INT, SW_EXC, PRIV_SW_EXC, HW_EXC, OTHER) and are dispatched in C; the
exception handlers behind them (do_int3, do_trap, do_general_protection,
do_invalid_op, handle_DB) are the ones IDT mode uses (xen_idt.py).
"""

from __future__ import annotations

from .vocab import (BP, BR, DB, GP, NONE, NP, OF, UD, Callback, CodeMode, GuestEvent, HwEvent, Kind,
                     MaskFlag, Source)
from .outcome import GuestOutcome, HwOutcome
from .rules import Rule, State, case
from .xen_idt import (DB_DEBUG, GATE_RAW, INT3_DEBUG, NOTHING, SHUTDOWN, G, debug_event, general_protection,
                      at_insn, inject, invalid_op, kernel, not_present, permitted, resumes,
                      sysenter_bounce)
from .xen_idt import callback as idt_callback

R = Rule
ENTRY = R("xen.fred.entry", "entry_FRED_R3 -> entry_from_pv: a {source} event, vector {vector:#04x}",
          "Xen x86_64/entry-fred.S L13-33; traps.c L2275-2482 (entry_from_pv)")
SW_INT = R("xen.fred.sw_int", "entry_from_pv: SW_INT {vector:#04x} gets the vDPL check (0x80 included: no fast path)",
           "Xen traps.c L2321-2352; reference 1.1 item 1, 6 row 15")
SW_INT_EXC = R("xen.fred.sw_int_exception", "entry_from_pv: SW_INT {vector:#04x} is sent to exception handling",
               "Xen traps.c L2339-2352 (vectors 3 and 4); reference 6 rows 4 and 9")
VDPL_DENY = R("xen.fred.vdpl.deny", "TT[{vector:#04x}] vDPL {dpl} does not permit guest {mode} mode: "
              "%rip -= insnlen (the whole instruction), #GP({ec:#x})",
              "Xen traps.c L2339-2350; include/asm/regs.h L18-19 (permit_softint)")
VDPL_ALLOW = R("xen.fred.vdpl.allow", "TT[{vector:#04x}] vDPL {dpl} permits guest {mode} mode: SW_INT "
               "{vector:#04x} is injected (no decoding, so any prefix form)",
               "Xen traps.c L2339-2350; reference 8.1 (the REX form is delivered under FRED)")
EXC_INT3 = R("xen.fred.int3", "do_int3: #BP is bounced through TT[3]; its vDPL is not consulted",
             "Xen traps.c L2353-2362, L1381-1404 (do_int3)")
EXC_OF = R("xen.fred.of", "do_trap: #OF is bounced through TT[4]; its vDPL is not consulted",
           "Xen traps.c L2353-2374, L1315-1337 (do_trap)")
EXC_DB = R("xen.fred.db", "PRIV_SW_EXC/1 -> handle_DB: #DB is bounced through TT[1]",
           "Xen traps.c L2363 (handle_DB(regs, edata))")
EXC_GP = R("xen.fred.gp", "HW_EXC #GP({ec:#x}) -> do_general_protection", "Xen traps.c L2353-2380, L1407-1478")
EXC_UD = R("xen.fred.ud", "HW_EXC #UD -> do_invalid_op", "Xen traps.c L2353-2380, L1339-1379")
EXC_BR = R("xen.fred.br", "HW_EXC #BR -> do_trap: #BR is bounced through TT[5]", "Xen traps.c L2353-2380")
EXC_NP = R("xen.fred.np", "HW_EXC #NP({ec:#x}) -> do_trap", "Xen traps.c L2353-2380, L1315-1337")
EXC_OTHER = R("xen.fred.other", "event {vector:#04x} from a guest instruction: not modelled", "reference 3.11")
OTHER_SYSCALL = R("xen.fred.other1", "entry_from_pv: an OTHER event, vector 1 (SYSCALL)", "Xen traps.c L2385-2437")
OTHER_SYSENTER = R("xen.fred.other2", "entry_from_pv: an OTHER event, vector 2 (SYSENTER)", "Xen traps.c L2439-2467")
SYSCALL_KERNEL = R("xen.fred.syscall.kernel", "OTHER/1 (SYSCALL) in guest kernel mode, 64-bit or compatibility "
                   "code: a hypercall", "Xen traps.c L2409-2418; reference 1.1 item 6, 6 row 27")
SYSCALL_USER64 = R("xen.fred.syscall.user64", "OTHER/1 (SYSCALL) from 64-bit user code (fred_ss.l=1): "
                   "syscall callback", "Xen traps.c L2419-2435; reference 6 row 28")
SYSCALL_USER32 = R("xen.fred.syscall.user32", "OTHER/1 (SYSCALL) from compatibility-mode user code "
                   "(fred_ss.l=0): syscall32 callback, masked per the syscall32 flag",
                   "Xen traps.c L2419-2435; pv/traps.c L117-120; reference 6 row 29, 1.1 item 6")
CB_BOUNCE = R("xen.fred.callback", "pv_inject_callback: bounce to the registered {callback} callback; "
              "the {mask} flag decides whether events are masked",
              "Xen pv/traps.c L101-136 (pv_inject_callback); traps.c L2419-2467")
CB_MISSING_UD = R("xen.fred.callback.none_ud", "no {callback} callback: %rip -= insnlen, #UD",
                  "Xen traps.c L2419-2435; reference 7 items 3 and 4")
CB_MISSING_GP = R("xen.fred.callback.none_gp", "no {callback} callback: #GP(0), frame rip=0, no rewind",
                  "Xen traps.c L2456-2463; reference 1.1 item 2")
CALLBACK_RULES = (CB_BOUNCE, CB_MISSING_UD, CB_MISSING_GP)
SYSENTER = R("xen.fred.sysenter", "OTHER/2 (SYSENTER): frame rebuilt (rip=0, cs=3, rsp=0); sysenter callback",
             "Xen traps.c L2439-2467; reference 6 row 35")
SYSENTER_K64 = R("xen.fred.sysenter.pv64_kernel",
                 "OTHER/2 (SYSENTER) from the PV64 kernel: the bounce frame is built below RSP=0: domain crash",
                 "Xen traps.c L2439-2467 (derived from the code; reference 6 row 33)",
                 uncertain="PV64 kernel-mode SYSENTER is derived from the code, not tested: probably a "
                           "domain crash, else the callback or #GP(0) as from user mode (reference 6 row 33)")


def xen_fred_event(s: State, hw: HwOutcome) -> GuestOutcome:
    """What the PV64 guest sees when the CPU delivered `hw` with FRED."""
    o = s.ops
    return o.decide(
        case(hw.event == HwEvent.NONE, NOTHING, lambda: resumes(GuestEvent.NONE)),
        case(hw.event == HwEvent.SHUTDOWN, SHUTDOWN, lambda: G(GuestEvent.XEN_CRASH)),
        case(hw.event == HwEvent.SYSCALL, OTHER_SYSCALL, lambda: syscall(s)),
        case(hw.event == HwEvent.SYSENTER, OTHER_SYSENTER, lambda: sysenter(s)),
        case(hw.event == HwEvent.CALL_GATE, GATE_RAW, lambda: G(GuestEvent.UNMODELLED)),
        case(True, ENTRY, lambda: event(s, hw), source=hw.source, vector=hw.vector),
    )


def event(s: State, hw: HwOutcome) -> GuestOutcome:
    """entry_from_pv's switch on the event type and vector."""
    o = s.ops
    v, ec = hw.vector, hw.error_code
    return o.decide(
        case(o.all(hw.source == Source.SW_INT, v != BP, v != OF), SW_INT, lambda: soft_int(s, v), vector=v),
        case(v == BP, EXC_INT3, lambda: debug_event(s, BP, INT3_DEBUG)),
        case(v == OF, EXC_OF, lambda: inject(s, OF, NONE, Source.HW_EXC, Kind.TRAP)),
        case(v == DB, EXC_DB, lambda: debug_event(s, DB, DB_DEBUG)),
        case(v == GP, EXC_GP, lambda: general_protection(s, ec), ec=ec),
        case(v == UD, EXC_UD, lambda: invalid_op(s)),
        case(v == BR, EXC_BR, lambda: inject(s, BR, NONE, Source.HW_EXC, Kind.FAULT)),
        case(v == NP, EXC_NP, lambda: not_present(s, ec), ec=ec),
        case(True, EXC_OTHER, lambda: G(GuestEvent.UNMODELLED), vector=v),
    )


def soft_int(s: State, vector) -> GuestOutcome:
    """INT $N other than 3 and 4: the vDPL check, with no decoding and no fast path."""
    o = s.ops
    vdpl = s.tt("dpl", vector)
    ec = vector * 8 + 2
    why = dict(vector=vector, dpl=vdpl, mode=s.guest_mode, ec=ec)
    return o.decide(
        case(o.not_(permitted(s, vdpl)), VDPL_DENY, lambda: inject(s, GP, ec, Source.HW_EXC, Kind.FAULT), **why),
        case(True, VDPL_ALLOW, lambda: inject(s, vector, NONE, Source.SW_INT, Kind.TRAP), **why),
    )


def syscall(s: State) -> GuestOutcome:
    o = s.ops
    return o.decide(
        case(kernel(s), SYSCALL_KERNEL, lambda: resumes(GuestEvent.HYPERCALL)),
        case(s.mode == CodeMode.LONG64, SYSCALL_USER64,
             lambda: callback(s, Callback.SYSCALL, s.cb_syscall, UD, MaskFlag.SYSCALL, at_insn)),
        case(True, SYSCALL_USER32,
             lambda: callback(s, Callback.SYSCALL32, s.cb_syscall32, UD, MaskFlag.SYSCALL32, at_insn)),
    )


def sysenter(s: State) -> GuestOutcome:
    return sysenter_bounce(s, SYSENTER_K64, SYSENTER, CALLBACK_RULES)


def callback(s: State, which: Callback, registered, missing: int, mask: MaskFlag, rip_missing) -> GuestOutcome:
    """pv_inject_callback, or the fault Xen substitutes (SYSCALL: `rip -= insnlen`, the whole instruction)."""
    return idt_callback(s, which, registered, missing, mask, rip_missing, rules=CALLBACK_RULES)

