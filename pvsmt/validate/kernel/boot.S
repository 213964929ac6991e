/* boot.S - the 512-byte boot sector of the pvsmt validation kernel.
 *
 * Loaded by the BIOS at 0x7c00 (real mode, DL = boot drive).  It
 *   1. loads the rest of the image (kernel + case table) to 0x7e00 with
 *      int 13h AH=42h (extended read, LBA) in chunks of 32 sectors;
 *   2. enables A20 (port 0x92, "fast A20");
 *   3. enters 32-bit protected mode (SDM Vol.3 9.9.1 "Switching to Protected Mode");
 *   4. builds identity-mapped 4-level paging for the first 1 GiB with 2 MiB pages
 *      and enters IA-32e mode: CR4.PAE, CR3, EFER.LME, CR0.PG, then a far jump to a
 *      code segment with L=1 (SDM Vol.3 10.8.5 "Initializing IA-32e Mode").
 * The runner patches the header fields at offsets 4 (u16 sectors to load) and
 * 8 (u32 address of the case table), see layout.h.
 */
#include "layout.h"

        .section .boot, "ax"
        .code16
        .globl boot_start
boot_start:
        jmp     real_start
        .org    HDR_SECTORS
hdr_sectors:
        .word   0
        .org    HDR_TABLE
hdr_table:
        .long   0

real_start:
        cli
        xor     %ax, %ax
        mov     %ax, %ds
        mov     %ax, %es
        mov     %ax, %ss
        mov     $BOOT_ADDR, %sp
        ljmp    $0, $1f
1:      mov     %dl, boot_drive
        /* fast A20: set bit 1 of port 0x92, keep bit 0 (reset) clear */
        in      $0x92, %al
        or      $2, %al
        and     $0xfe, %al
        out     %al, $0x92

load_loop:
        mov     hdr_sectors, %cx
        test    %cx, %cx
        jz      loaded
        mov     $32, %ax
        cmp     %ax, %cx
        jae     2f
        mov     %cx, %ax
2:      mov     %ax, dap_count
        mov     $dap, %si
        mov     boot_drive, %dl
        mov     $0x42, %ah
        int     $0x13
        jc      disk_error
        mov     dap_count, %ax
        sub     %ax, hdr_sectors
        add     %ax, dap_lba
        adcw    $0, dap_lba + 2
        shl     $5, %ax                 /* sectors -> paragraphs */
        add     %ax, dap_seg
        jmp     load_loop

disk_error:
        mov     $0x3f8, %dx
        mov     $'!', %al
        out     %al, %dx
        mov     %ah, %al
        out     %al, %dx
3:      hlt
        jmp     3b

loaded:
        lgdt    gdt32_ptr
        mov     %cr0, %eax
        or      $1, %eax                /* CR0.PE */
        mov     %eax, %cr0
        ljmpl   $0x08, $pm32

        .code32
pm32:
        mov     $0x10, %ax
        mov     %ax, %ds
        mov     %ax, %es
        mov     %ax, %ss
        mov     %ax, %fs
        mov     %ax, %gs
        /* zero PML4, PDPT, PD */
        mov     $PT_ADDR, %edi
        xor     %eax, %eax
        mov     $3 * 1024, %ecx
        rep stosl
        /* P | R/W | U/S on every level: CPL3 test code runs anywhere */
        movl    $(PT_ADDR + 0x1000 + 7), PT_ADDR
        movl    $(PT_ADDR + 0x2000 + 7), PT_ADDR + 0x1000
        mov     $(PT_ADDR + 0x2000), %edi
        mov     $0x87, %eax             /* P | R/W | U/S | PS (2 MiB) */
        mov     $512, %ecx
4:      mov     %eax, (%edi)
        add     $0x200000, %eax
        add     $8, %edi
        loop    4b
        mov     $PT_ADDR, %eax
        mov     %eax, %cr3
        mov     %cr4, %eax
        or      $0x20, %eax             /* CR4.PAE */
        mov     %eax, %cr4
        mov     $0xc0000080, %ecx       /* IA32_EFER */
        rdmsr
        or      $0x100, %eax            /* EFER.LME */
        wrmsr
        mov     %cr0, %eax
        or      $0x80000000, %eax       /* CR0.PG -> IA-32e mode active */
        mov     %eax, %cr0
        ljmp    $0x18, $long_entry

        .balign 8
gdt32:
        .quad   0
        .quad   0x00cf9a000000ffff      /* 0x08 32-bit code */
        .quad   0x00cf92000000ffff      /* 0x10 data */
        .quad   0x00af9a000000ffff      /* 0x18 64-bit code */
gdt32_ptr:
        .word   gdt32_ptr - gdt32 - 1
        .long   gdt32

        .balign 4
dap:    .byte   16, 0
dap_count:
        .word   0
dap_off:
        .word   0
dap_seg:
        .word   (BOOT_ADDR + 512) >> 4
dap_lba:
        .quad   1
boot_drive:
        .byte   0

        .org    510
        .word   0xaa55
