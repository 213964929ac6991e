/*
 * pvsmt PV test guest: constants.
 *
 * ABI numbers are facts from Xen's public headers (xen/include/public/):
 * xen.h (hypercall numbers, MMUEXT_*, UVMF_*, CONSOLEIO_*, DOMID_SELF),
 * callback.h (CALLBACKTYPE_*, CALLBACKF_*), elfnote.h (XEN_ELFNOTE_*),
 * arch-x86/xen-x86_64.h and arch-x86/xen-x86_32.h (flat selectors),
 * version.h (XENVER_version), sched.h (SCHEDOP_yield).
 */
#ifndef PVSMT_XENGUEST_LAYOUT_H
#define PVSMT_XENGUEST_LAYOUT_H

#define VIRT_BASE            0x400000

/* hypercall numbers (public/xen.h) */
#define HC_set_trap_table    0
#define HC_set_gdt           2
#define HC_stack_switch      3
#define HC_update_descriptor 10
#define HC_update_va_mapping 14
#define HC_xen_version       17
#define HC_console_io        18
#define HC_iret              23
#define HC_mmuext_op         26
#define HC_sched_op          29
#define HC_callback_op       30

#define CONSOLEIO_write      0
#define MMUEXT_SET_LDT       13
#define MMUEXT_NEW_USER_BASEPTR 15
#define UVMF_INVLPG          2
#define DOMID_SELF           0x7FF0
#define XENVER_version       0
#define SCHEDOP_yield        0

/* public/callback.h (interface version >= 0x00030203) */
#define CALLBACKOP_register  0
#define CALLBACKTYPE_event    0
#define CALLBACKTYPE_failsafe 1
#define CALLBACKTYPE_syscall  2
#define CALLBACKTYPE_sysenter 5
#define CALLBACKTYPE_syscall32 7
#define CALLBACKF_mask_events 1

/* public/elfnote.h */
#define XEN_ELFNOTE_ENTRY          1
#define XEN_ELFNOTE_HYPERCALL_PAGE 2
#define XEN_ELFNOTE_VIRT_BASE      3
#define XEN_ELFNOTE_PADDR_OFFSET   4
#define XEN_ELFNOTE_XEN_VERSION    5
#define XEN_ELFNOTE_GUEST_OS       6
#define XEN_ELFNOTE_LOADER         8
#define XEN_ELFNOTE_PAE_MODE       9

/* flat selectors (public/arch-x86/xen-x86_64.h, xen-x86_32.h) */
#ifdef __x86_64__
#define KERNEL_CS   0xe033      /* FLAT_KERNEL_CS64 = FLAT_RING3_CS64 */
#define KERNEL_SS   0xe02b      /* FLAT_KERNEL_SS64 */
#define USER_CS64   0xe033      /* FLAT_USER_CS64 */
#define USER_CS32   0xe023      /* FLAT_USER_CS32 = FLAT_RING3_CS32 */
#define USER_SS     0xe02b      /* FLAT_USER_SS64 / SS32 */
#define DATA32      0xe02b      /* FLAT_RING3_DS32 */
#else
#define KERNEL_CS   0xe019      /* FLAT_RING1_CS */
#define KERNEL_DS   0xe021      /* FLAT_RING1_DS / SS */
#define KERNEL_SS   0xe021
#define USER_CS32   0xe02b      /* FLAT_RING3_CS */
#define USER_DS     0xe033      /* FLAT_RING3_DS / SS */
#define USER_SS     0xe033
#endif

/* event ids pushed by the catch stubs: 0..255 = TT vector */
#define EV_SYSCALL   0x100
#define EV_SYSCALL32 0x101
#define EV_SYSENTER  0x102
#define EV_UPCALL    0x103
#define EV_FAILSAFE  0x104
#define EV_GATE      0x105      /* the target of an emulated call gate */

/*
 * The guest's descriptor tables, for call gates (one page = 512 descriptors).
 * GDT: every frame a guest may own, entries 0..FIRST_RESERVED_GDT_ENTRY-1
 * (public/arch-x86/xen.h L82-84: FIRST_RESERVED_GDT_PAGE 14); Xen's reserved
 * page follows, and the GDTR limit ends with it (xen/arch/x86/include/asm/desc.h
 * L10-17, LAST_RESERVED_GDT_BYTE; traps-setup.c L55): selectors of index
 * 0x1e00 and up are beyond the limit.  LDT: the largest MMUEXT_SET_LDT takes
 * (xen/arch/x86/mm.c L3840-3845: ents > 8192 is -EINVAL).
 */
#define GDT_PAGES    14
#define GDT_ENTS     (GDT_PAGES * 512)
#define LDT_PAGES    16
#define LDT_ENTS     (LDT_PAGES * 512)

/* the user region: the test stub page, data page, then the event stack */
#define USER_PAGES   4

#endif
