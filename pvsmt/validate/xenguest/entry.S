/*
 * pvsmt PV test guest: ELF notes, entry point, catch stubs, mode entry.
 * One source for both builds: PV64 (__x86_64__) and PV32 (PAE, ring 1 kernel).
 * Frame layouts follow Xen's public ABI (xen-x86_64.h: rcx, r11 above the
 * exception frame; 32-bit: [err], eip, cs, eflags, [esp, ss]).
 */
#include "layout.h"

#ifdef __x86_64__
#define WORD .quad
#else
#define WORD .long
#endif

/* ELF note with owner "Xen" (public/elfnote.h) */
#define XNOTE(type, desc)                                               \
        .pushsection .note.Xen, "a", @note;                             \
        .p2align 2; .long 4; .long 2f - 1f; .long type; .asciz "Xen";   \
        .p2align 2; 1: desc; 2: .p2align 2;                             \
        .popsection

        XNOTE(XEN_ELFNOTE_GUEST_OS, .asciz "pvsmt")
        XNOTE(XEN_ELFNOTE_XEN_VERSION, .asciz "xen-3.0")
        XNOTE(XEN_ELFNOTE_LOADER, .asciz "generic")
        XNOTE(XEN_ELFNOTE_VIRT_BASE, WORD VIRT_BASE)
        XNOTE(XEN_ELFNOTE_PADDR_OFFSET, WORD VIRT_BASE)
        XNOTE(XEN_ELFNOTE_ENTRY, WORD _start)
        XNOTE(XEN_ELFNOTE_HYPERCALL_PAGE, WORD hypercall_page)
#ifndef __x86_64__
        XNOTE(XEN_ELFNOTE_PAE_MODE, .asciz "yes")
#endif

        .text
        .globl _start
_start:
#ifdef __x86_64__
        mov   $main_stack_top, %rsp
        mov   %rsi, %rdi                /* start_info */
        call  guest_main
#else
        mov   $main_stack_top, %esp
        push  %esi
        call  guest_main
#endif
1:      jmp   1b

/* 256 catch stubs, 16 bytes apart: push the vector, go to the common path */
        .p2align 4
        .globl trap_stubs
trap_stubs:
        .set vec, 0
        .rept 256
        .p2align 4
        push  $vec
        jmp   event_common
        .set vec, vec + 1
        .endr

        .globl cb_syscall, cb_syscall32, cb_sysenter, cb_upcall, cb_failsafe, cb_gate
cb_syscall:   push $EV_SYSCALL
              jmp  event_common
cb_syscall32: push $EV_SYSCALL32
              jmp  event_common
cb_sysenter:  push $EV_SYSENTER
              jmp  event_common
cb_upcall:    push $EV_UPCALL
              jmp  event_common
cb_failsafe:  push $EV_FAILSAFE
              jmp  event_common
/* the target of every present call gate (Xen emulates a PV32 far CALL through it) */
cb_gate:      push $EV_GATE
              jmp  event_common

/*
 * Common path: keep %rax (the hypercall result check), read the event upcall
 * mask as it was on arrival, mask events, move to the main stack and call
 * on_event(id, frame) (never returns; frame = %rsp before the stub's push).
 */
event_common:
#ifdef __x86_64__
        mov   %rax, saved_rax
        mov   %rbx, saved_rbx
        mov   vcpu_mask_ptr, %rbx
        movzbl (%rbx), %eax
        mov   %eax, arrival_mask
        movb  $1, (%rbx)
        pop   %rdi
        mov   %rsp, %rsi
        mov   $main_stack_top, %rsp
        call  on_event
#else
        mov   %eax, %ss:saved_rax
        mov   $KERNEL_DS, %eax
        mov   %eax, %ds
        mov   %eax, %es
        mov   %ebx, saved_rbx
        mov   vcpu_mask_ptr, %ebx
        movzbl (%ebx), %eax
        mov   %eax, arrival_mask
        movb  $1, (%ebx)
        pop   %eax
        mov   %esp, %edx
        mov   $main_stack_top, %esp
        push  %edx
        push  %eax
        call  on_event
#endif
1:      jmp   1b

/*
 * enter_kernel(stub): run the stub in guest kernel mode, same code mode as the
 * kernel (PV64: 64-bit; PV32: ring 1 32-bit), events unmasked.
 */
        .globl enter_kernel
enter_kernel:
#ifdef __x86_64__
        mov   vcpu_mask_ptr, %rax
        mov   $event_stack_top, %rsp
        movb  $0, (%rax)
        jmp   *%rdi
#else
        mov   4(%esp), %ecx
        mov   vcpu_mask_ptr, %eax
        mov   $event_stack_top, %esp
        movb  $0, (%eax)
        jmp   *%ecx
#endif

#ifdef __x86_64__
/* enter_kernel_compat(stub): PV64 kernel mode, compatibility-mode code
 * (far return to FLAT_RING3_CS32, a ring-3 code segment the kernel may use) */
        .globl enter_kernel_compat
enter_kernel_compat:
        mov   $DATA32, %eax
        mov   %eax, %ds
        mov   %eax, %es
        mov   vcpu_mask_ptr, %rax
        mov   $event_stack_top, %rsp
        pushq $USER_CS32
        pushq %rdi
        movb  $0, (%rax)
        lretq

/* enter_user(stub, cs): HYPERVISOR_iret to user mode (cs & 3 == 3 switches
 * to the user page tables), RFLAGS.IF=1 clears the upcall mask. Frame per
 * struct iret_context: rax r11 rcx (pushed by the page) flags rip cs rflags rsp ss */
        .globl enter_user
enter_user:
        mov   $DATA32, %eax
        mov   %eax, %ds
        mov   %eax, %es
        mov   $event_stack_top, %rsp
        pushq $USER_SS
        pushq $event_stack_top
        pushq $0x202
        pushq %rsi
        pushq %rdi
        pushq $0
        xor   %eax, %eax
        xor   %ecx, %ecx
        xor   %r11d, %r11d
        jmp   hypercall_page + HC_iret * 32
#else
/* enter_user(stub): compat iret frame eax eip cs eflags esp ss (the page
 * pushes eax) */
        .globl enter_user
enter_user:
        mov   4(%esp), %ecx
        mov   $USER_DS, %eax
        mov   %eax, %ds
        mov   %eax, %es
        mov   $event_stack_top, %esp
        pushl $USER_SS
        pushl $event_stack_top
        pushl $0x202
        pushl $USER_CS32
        pushl %ecx
        xor   %eax, %eax
        jmp   hypercall_page + HC_iret * 32
#endif

        .section .text.hcpage, "ax"
        .p2align 12
        .globl hypercall_page
hypercall_page:
        .fill 4096, 1, 0xcc

        .section .user, "aw"
        .p2align 12
        .globl user_stub, user_data
user_stub:
        .fill 4096, 1, 0x90
user_data:
        .fill 4096, 1, 0
        .fill 8192, 1, 0
        .globl event_stack_top
event_stack_top:

        .bss
        .p2align 12
        .globl shinfo_page, gdt_pages, ldt_pages
shinfo_page:
        .skip 4096
/* descriptor pages: mapped read-only at start of day (Xen types them as
 * segment-descriptor pages), written only with HYPERVISOR_update_descriptor */
gdt_pages:
        .skip GDT_PAGES * 4096
ldt_pages:
        .skip LDT_PAGES * 4096
        .skip 16384
main_stack_top:
        .globl saved_rax, saved_rbx, arrival_mask, vcpu_mask_ptr
saved_rax:      .skip 8
saved_rbx:      .skip 8
arrival_mask:   .skip 4
        .p2align 3
vcpu_mask_ptr:  .skip 8
