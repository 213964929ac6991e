/* entry.S - 64-bit entry, IDT stubs, SYSCALL/SYSENTER/call-gate landing pads and the
 * IRETQ that drops to the test code.
 *
 * Every landing pad and IDT stub switches to kstack_top at once and calls C, which
 * records the observation and starts the next case; nothing ever returns to the
 * test code, so no handler needs IRETQ.
 */
#include "layout.h"

        .text
        .code64
        .globl long_entry
long_entry:
        mov     $0x10, %ax
        mov     %ax, %ds
        mov     %ax, %es
        mov     %ax, %ss
        mov     %ax, %fs
        mov     %ax, %gs
        mov     $kstack_top, %rsp
        mov     $__bss_start, %rdi
        mov     $__bss_end, %rcx
        sub     %rdi, %rcx
        xor     %eax, %eax
        rep stosb
        call    kmain
1:      cli
        hlt
        jmp     1b

/* 256 IDT entry stubs, 16 bytes apart: isr_stubs + 16 * vector.  All IDT gates use
 * IST1 (SDM Vol.3 7.14.5 "Interrupt Stack Table"), so the CPU frame always ends at
 * ist1_top and its size (40 or 48 bytes) tells whether an error code was pushed:
 * the CPU pushes one only for exceptions 8,10-14,17,21,29,30 it raises itself, never
 * for INT n (SDM Vol.3 7.13 "Error Code"). */
        .balign 16
        .globl isr_stubs
isr_stubs:
        .set    vec, 0
        .rept   256
        .balign 16
        pushq   $vec
        jmp     isr_common
        .set    vec, vec + 1
        .endr

isr_common:
        pushfq                          /* IF here = 0 via interrupt gate, 1 via trap gate */
        mov     %rsp, %rdi              /* [rflags_now, vector, (error), rip, cs, rflags, rsp, ss] */
        mov     $kstack_top, %rsp
        call    isr_c
        jmp     .

/* SYSCALL: RCX = next RIP, RSP is still the caller's (SDM Vol.2 SYSCALL). */
        .globl lstar_pad, cstar_pad, sysenter_pad, callgate_pad
lstar_pad:
        mov     $kstack_top, %rsp
        mov     %rcx, %rsi
        mov     $1, %edi
        call    landing_c
        jmp     .
cstar_pad:
        mov     $kstack_top, %rsp
        mov     %rcx, %rsi
        mov     $2, %edi
        call    landing_c
        jmp     .
/* SYSENTER: RSP = IA32_SYSENTER_ESP, nothing pushed. */
sysenter_pad:
        mov     $kstack_top, %rsp
        xor     %esi, %esi
        mov     $3, %edi
        call    landing_c
        jmp     .
/* Call gate to ring 0: the return RIP is on top of the new stack (SDM Vol.3 5.8.6). */
callgate_pad:
        mov     (%rsp), %rsi
        mov     $kstack_top, %rsp
        mov     $4, %edi
        call    landing_c
        jmp     .

/* void enter_test(const struct entry_regs *r): load DS/ES/FS/GS, build an IRETQ frame
 * (64-bit IRETQ always pops SS:RSP, SDM Vol.3 7.14.4), load RAX/RBX and go. */
        .globl enter_test
enter_test:
        mov     40(%rdi), %eax
        mov     %eax, %ds
        mov     %eax, %es
        mov     %eax, %fs
        mov     %eax, %gs
        pushq   32(%rdi)                /* SS */
        pushq   24(%rdi)                /* RSP */
        pushq   16(%rdi)                /* RFLAGS */
        pushq   8(%rdi)                 /* CS */
        pushq   0(%rdi)                 /* RIP */
        mov     48(%rdi), %rax
        mov     56(%rdi), %rbx
        xor     %ecx, %ecx
        xor     %edx, %edx
        xor     %esi, %esi
        xor     %edi, %edi
        iretq

        .bss
        .balign 16
kstack:         .skip   16384
        .globl kstack_top
kstack_top:
        .skip   16
ist1_stack:     .skip   8192
        .globl ist1_top
ist1_top:
        .skip   16
rsp0_stack:     .skip   8192
        .globl rsp0_top
rsp0_top:
        .skip   16
rsp12_stack:    .skip   8192
        .globl rsp12_top
rsp12_top:
        .skip   16
sysenter_stack: .skip   8192
        .globl sysenter_top
sysenter_top:
        .skip   16
