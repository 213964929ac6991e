/* layout.h - fixed addresses and selectors shared by boot.S, entry.S and kernel.c.
 *
 * Physical memory (identity mapped, 2 MiB pages, U/S=1 so CPL3 may execute anywhere):
 *   0x1000  STUB_ADDR     the instruction under test + completion sequence (rewritten per case)
 *   0x2000  DATA_ADDR     memory operands of the test (far pointer, BOUND limits)
 *   0x5000  USER_STACK    RSP/ESP of the test code (grows down to 0x3000)
 *   0x7c00  boot sector, then the kernel image, then the case table (loaded by int 13h)
 *   0x100000 page tables (PML4, PDPT, PD), built by the boot sector
 *   0x104000 kernel .bss (GDT, LDT, IDT, TSS, stacks)
 * Only the first 1 GiB is mapped; 0x40000000 is not present (used for the #PF completion).
 */
#define STUB_ADDR       0x1000
#define DATA_ADDR       0x2000
#define USER_STACK      0x5000
#define BOOT_ADDR       0x7c00
#define PT_ADDR         0x100000
#define UNMAPPED_ADDR   0x40000000

/* Boot-sector header fields (offsets into the boot sector), patched by the runner. */
#define HDR_SECTORS     4       /* u16: sectors to load after the boot sector */
#define HDR_TABLE       8       /* u32: linear address of the case table */

/* GDT layout.  Ring c (1..3) owns indexes 3c (compat code, L=0 D=1), 3c+1 (data), 3c+2
 * (64-bit code, L=1): the SYSRET layout of STAR[63:48] (SDM Vol.2 SYSRET). */
#define GDT_CODE0       1       /* 0x08 ring-0 64-bit code */
#define GDT_DATA0       2       /* 0x10 ring-0 data */
#define GDT_TSS         12      /* 16-byte 64-bit TSS descriptor (12,13) */
#define GDT_LDT         14      /* 16-byte LDT descriptor (14,15) */
#define GDT_COMPAT0     16      /* 0x80 ring-0 compatibility-mode code */
#define GDT_FIRST_FREE  17      /* first index a case may use for its call gate */
#define GDT_ENTRIES     8192

#define SEL_CODE0       (GDT_CODE0 << 3)
#define SEL_DATA0       (GDT_DATA0 << 3)
#define SEL_TSS         (GDT_TSS << 3)
#define SEL_LDT         (GDT_LDT << 3)
#define SEL_COMPAT0     (GDT_COMPAT0 << 3)
