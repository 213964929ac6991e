/* kernel.c - the pvsmt validation kernel: runs the case table, one line per case on COM1.
 *
 * Case table (little endian, at the address in the boot header, see emulator.py):
 *   header  16 bytes: u32 magic 'PVCT', u32 ncases, u32 noverrides, u32 reserved
 *   ncases records of 24 bytes (struct case_rec), then noverrides records of 4 bytes
 *   (struct idt_ovr); a case's overrides are ovr[first .. first+count).
 *
 * Serial output (COM1, 0x3f8), one line each, fields separated by one space:
 *   PVSMT START <cpuid vendor> <ncases hex>
 *   C <id hex> N                                  completed: the completion sequence ran
 *   C <id hex> I <vec hex> <error hex|-> <at> <I|T> an IDT vector; I = IF cleared on entry
 *   C <id hex> S <L|C> <at>                       SYSCALL via LSTAR / CSTAR, <at> from RCX
 *   C <id hex> E                                  SYSENTER landing pad
 *   C <id hex> G <at>                             call-gate landing pad, <at> = pushed RIP
 *   PVSMT PANIC <text>                            kernel bug: unexpected event outside a case
 *   PVSMT END
 * <at> is F (pushed RIP = start of the instruction), T (= next instruction) or
 * O:<hex RIP> otherwise.
 */
#include "layout.h"

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long u64;

struct case_rec {
    u32 id;
    u8 insn, cpl, mode, vector, prefix, flags;
    u16 gate_index;
    u8 gate_rpl, gate_dpl;
    u16 ovr_count;
    u32 ovr_first;
    u32 reserved;
} __attribute__((packed));

struct idt_ovr { u8 vector, present, dpl, type; } __attribute__((packed));

struct table_hdr { u32 magic, ncases, noverrides, reserved; };

enum { I_INT3, I_INT_N, I_INTO, I_INT1, I_CALLGATE, I_SYSCALL, I_SYSENTER,
       I_UD0, I_UD1, I_UD2, I_BOUND };
enum { F_OF = 1, F_BOUND_IN = 2, F_SCE = 4, F_SYSENTER_NULL = 8, F_LDT = 16,
       F_IN_LIMIT = 32, F_GATE_P = 64 };
enum { MODE_LONG64 = 0, MODE_COMPAT = 1 };
enum { PFX_NONE, PFX_LEGACY, PFX_REX };

struct tss64 {
    u32 reserved0;
    u64 rsp[3];
    u64 reserved1;
    u64 ist[7];
    u64 reserved2;
    u16 reserved3, iomap_base;
} __attribute__((packed));

/* Must match the IRETQ frame built by enter_test in entry.S. */
struct entry_regs { u64 rip, cs, rflags, rsp, ss, ds, rax, rbx; };

extern u8 isr_stubs[], kstack_top[], ist1_top[], rsp0_top[], rsp12_top[], sysenter_top[];
extern void lstar_pad(void), cstar_pad(void), sysenter_pad(void), callgate_pad(void);
extern void enter_test(const struct entry_regs *r) __attribute__((noreturn));

static u64 gdt[GDT_ENTRIES] __attribute__((aligned(16)));
static u64 ldt[GDT_ENTRIES] __attribute__((aligned(16)));
static u64 idt[512] __attribute__((aligned(16)));
static struct tss64 tss __attribute__((aligned(16)));
static u8 idt_present[256];

static const struct table_hdr *table;
static const struct case_rec *cases;
static const struct idt_ovr *ovrs;
static u32 cur;                 /* index of the running case */
static volatile int in_test;    /* 1 between enter_test and the event */
static u64 insn_start, insn_end, done_rip;
static int done_vector;

/* ---- small helpers ---------------------------------------------------------------- */

void *memset(void *d, int c, unsigned long n)
{
    u8 *p = d;
    while (n--) *p++ = (u8)c;
    return d;
}

void *memcpy(void *d, const void *s, unsigned long n)
{
    u8 *p = d;
    const u8 *q = s;
    while (n--) *p++ = *q++;
    return d;
}

static inline void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" :: "a"(v), "Nd"(port)); }
static inline u8 inb(u16 port) { u8 v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }

static inline u64 rdmsr(u32 msr)
{
    u32 lo, hi;
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return ((u64)hi << 32) | lo;
}

static inline void wrmsr(u32 msr, u64 v)
{
    __asm__ volatile("wrmsr" :: "c"(msr), "a"((u32)v), "d"((u32)(v >> 32)));
}

struct __attribute__((packed)) dtr { u16 limit; u64 base; };

static void lgdt(u16 limit)
{
    struct dtr d = { limit, (u64)gdt };
    __asm__ volatile("lgdt %0" :: "m"(d) : "memory");
}

static void lldt(u16 sel) { __asm__ volatile("lldt %0" :: "r"(sel) : "memory"); }

/* Ring-0 segment registers after an event; SS may be NULL after an interrupt from an
 * outer ring in 64-bit mode (SDM Vol.3 7.14.2), DS/ES/FS/GS may hold ring-c selectors. */
static void reset_segments(void)
{
    __asm__ volatile("mov %0, %%ds; mov %0, %%es; mov %0, %%ss; mov %0, %%fs; mov %0, %%gs"
                     :: "r"((u32)SEL_DATA0) : "memory");
}

/* ---- serial (16550 UART, COM1) ---------------------------------------------------- */

#define COM1 0x3f8

static void serial_init(void)
{
    outb(COM1 + 1, 0x00);       /* no UART interrupts */
    outb(COM1 + 3, 0x80);       /* DLAB */
    outb(COM1 + 0, 0x01);       /* 115200 baud */
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03);       /* 8N1 */
    outb(COM1 + 2, 0xc7);       /* FIFO on, cleared */
    outb(COM1 + 4, 0x03);       /* DTR | RTS, OUT2 clear: no IRQ */
}

static void putc(char c)
{
    while (!(inb(COM1 + 5) & 0x20))
        ;
    outb(COM1, (u8)c);
}

static void puts(const char *s)
{
    while (*s) putc(*s++);
}

/* End a line and wait until the UART has sent it (LSR.TEMT): a triple fault in the next
 * case resets the machine, and with it whatever the UART still holds. */
static void endline(void)
{
    putc('\n');
    while (!(inb(COM1 + 5) & 0x40))
        ;
}

static void puthex(u64 v)
{
    char buf[17];
    int i = 16;
    buf[i] = 0;
    do {
        buf[--i] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    puts(buf + i);
}

static void put_at(u64 rip)
{
    if (rip == insn_start) puts(" F");
    else if (rip == insn_end) puts(" T");
    else { puts(" O:"); puthex(rip); }
}

/* ---- end of the run --------------------------------------------------------------- */

static void __attribute__((noreturn)) finish(const char *line)
{
    puts(line);
    while (!(inb(COM1 + 5) & 0x40))     /* transmitter empty */
        ;
    outb(0xf4, 0);                      /* QEMU isa-debug-exit */
    for (const char *s = "Shutdown"; *s; s++)
        outb(0x8900, (u8)*s);           /* Bochs shutdown port */
    for (;;) __asm__ volatile("cli; hlt");
}

static void __attribute__((noreturn)) panic(const char *what, u64 a, u64 b)
{
    puts("PVSMT PANIC ");
    puts(what);
    putc(' ');
    puthex(a);
    putc(' ');
    puthex(b);
    finish("\n");
}

/* ---- descriptors (SDM Vol.3 3.4.5 "Segment Descriptors", 6.14.1 "64-Bit Mode IDT") --- */

#define CODE64_DESC     0x00af9a000000ffffUL    /* G, L, P, S, execute/read */
#define CODE32_DESC     0x00cf9a000000ffffUL    /* G, D, P, S, execute/read */
#define DATA_DESC       0x00cf92000000ffffUL    /* G, D/B, P, S, read/write */

static u64 with_dpl(u64 desc, int dpl) { return desc | ((u64)dpl << 45); }

/* 16-byte system descriptor (TSS, LDT) in gdt[i], gdt[i+1] */
static void set_system_desc(int i, u64 base, u32 limit, u8 type)
{
    gdt[i] = (limit & 0xffff) | ((base & 0xffffff) << 16) | ((u64)(0x80 | type) << 40)
           | ((u64)((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56);
    gdt[i + 1] = base >> 32;
}

/* 64-bit gate (IDT interrupt 0xE / trap 0xF, call gate 0xC): 16 bytes at d[0], d[1] */
static void set_gate(u64 *d, u64 off, u16 sel, int ist, int type, int dpl, int present)
{
    d[0] = (off & 0xffff) | ((u64)sel << 16) | ((u64)ist << 32)
         | ((u64)(type | (dpl << 5) | (present << 7)) << 40) | (((off >> 16) & 0xffff) << 48);
    d[1] = off >> 32;           /* upper type field (bits 8-12 of the high dword) = 0 */
}

static void gdt_init(void)
{
    gdt[GDT_CODE0] = CODE64_DESC;
    gdt[GDT_DATA0] = DATA_DESC;
    for (int c = 1; c <= 3; c++) {
        gdt[3 * c] = with_dpl(CODE32_DESC, c);
        gdt[3 * c + 1] = with_dpl(DATA_DESC, c);
        gdt[3 * c + 2] = with_dpl(CODE64_DESC, c);
    }
    gdt[GDT_COMPAT0] = CODE32_DESC;
    tss.rsp[0] = (u64)rsp0_top;
    tss.rsp[1] = tss.rsp[2] = (u64)rsp12_top;
    tss.ist[0] = (u64)ist1_top;
    tss.iomap_base = sizeof tss;        /* no I/O bitmap */
    set_system_desc(GDT_TSS, (u64)&tss, sizeof tss - 1, 0x9);
    lgdt(sizeof gdt - 1);
    __asm__ volatile("pushq %0; pushq $1f; lretq; 1:" :: "i"(SEL_CODE0) : "memory");
    reset_segments();
    __asm__ volatile("ltr %0" :: "r"((u16)SEL_TSS));
    lldt(0);
}

static void idt_set(int v, int present, int dpl, int trap)
{
    set_gate(&idt[2 * v], (u64)(isr_stubs + 16 * v), SEL_CODE0, 1, trap ? 0xf : 0xe, dpl, present);
    idt_present[v] = (u8)present;
}

static void idt_init(void)
{
    for (int v = 0; v < 256; v++)
        idt_set(v, 1, 0, 0);
    struct dtr d = { sizeof idt - 1, (u64)idt };
    __asm__ volatile("lidt %0" :: "m"(d) : "memory");
}

/* ---- MSRs (SDM Vol.4; SYSCALL/SYSENTER: SDM Vol.3 5.8.7 / 5.8.8) ------------------- */

#define MSR_EFER            0xc0000080
#define MSR_STAR            0xc0000081
#define MSR_LSTAR           0xc0000082
#define MSR_CSTAR           0xc0000083
#define MSR_FMASK           0xc0000084
#define MSR_SYSENTER_CS     0x174
#define MSR_SYSENTER_ESP    0x175
#define MSR_SYSENTER_EIP    0x176

static void msr_init(void)
{
    /* SYSCALL: CS = STAR[47:32], SS = +8; SYSRET base STAR[63:48] = ring-3 compat code */
    wrmsr(MSR_STAR, ((u64)((3 * 3) << 3 | 3) << 48) | ((u64)SEL_CODE0 << 32));
    wrmsr(MSR_LSTAR, (u64)lstar_pad);
    wrmsr(MSR_CSTAR, (u64)cstar_pad);
    wrmsr(MSR_FMASK, 0x200);            /* clear IF on SYSCALL */
    wrmsr(MSR_SYSENTER_ESP, (u64)sysenter_top);
    wrmsr(MSR_SYSENTER_EIP, (u64)sysenter_pad);
}

static void msr_case(const struct case_rec *c)
{
    u64 efer = rdmsr(MSR_EFER);
    efer = (c->flags & F_SCE) ? (efer | 1) : (efer & ~1UL);
    wrmsr(MSR_EFER, efer);
    wrmsr(MSR_SYSENTER_CS, (c->flags & F_SYSENTER_NULL) ? 0 : SEL_CODE0);
}

/* ---- per-case setup --------------------------------------------------------------- */

static void idt_case(const struct case_rec *c)
{
    for (u32 i = 0; i < c->ovr_count; i++) {
        const struct idt_ovr *o = &ovrs[c->ovr_first + i];
        idt_set(o->vector, o->present, o->dpl & 3, o->type);
    }
}

static void idt_restore(const struct case_rec *c)
{
    for (u32 i = 0; i < c->ovr_count; i++)
        idt_set(ovrs[c->ovr_first + i].vector, 1, 0, 0);
}

static u16 gate_selector(const struct case_rec *c)
{
    return (u16)((c->gate_index << 3) | ((c->flags & F_LDT) ? 4 : 0) | (c->gate_rpl & 3));
}

/* Place the case's 64-bit call gate (target: ring-0 64-bit code at callgate_pad) and set
 * the table limit; an out-of-limit selector sees a limit just below its index
 * (SDM Vol.3 3.4.2: index*8+7 must be within the limit). */
static void gate_case(const struct case_rec *c)
{
    int i = c->gate_index, in = c->flags & F_IN_LIMIT, p = (c->flags & F_GATE_P) ? 1 : 0;
    if (c->flags & F_LDT) {
        set_gate(&ldt[i], (u64)callgate_pad, SEL_CODE0, 0, 0xc, c->gate_dpl & 3, p);
        if (!in && i == 0) {
            lldt(0);                    /* no LDT loaded */
            return;
        }
        set_system_desc(GDT_LDT, (u64)ldt, in ? sizeof ldt - 1 : (u32)i * 8 - 1, 0x2);
        lldt(SEL_LDT);
    } else if (i != 0) {
        set_gate(&gdt[i], (u64)callgate_pad, SEL_CODE0, 0, 0xc, c->gate_dpl & 3, p);
        if (!in)
            lgdt((u16)(i * 8 - 1));
    }
}

static void gate_restore(const struct case_rec *c)
{
    int i = c->gate_index;
    if (c->flags & F_LDT) {
        ldt[i] = ldt[i + 1] = 0;
        lldt(0);
    } else if (i != 0) {
        gdt[i] = gdt[i + 1] = 0;
        lgdt(sizeof gdt - 1);
    }
}

/* ---- the test stub ---------------------------------------------------------------- */

static u8 *emit_p;
static void emit(int n, const u8 *b) { while (n--) *emit_p++ = *b++; }
#define EMIT(...) do { static const u8 b_[] = { __VA_ARGS__ }; emit(sizeof b_, b_); } while (0)

/* The instruction under test at STUB_ADDR; regs get the operands it needs. */
static void emit_insn(const struct case_rec *c, struct entry_regs *r)
{
    int compat = c->mode == MODE_COMPAT;
    switch (c->insn) {
    case I_INT3: EMIT(0xcc); break;
    case I_INT_N:
        if (c->prefix == PFX_LEGACY) EMIT(0x66);
        if (c->prefix == PFX_REX) EMIT(0x48);
        EMIT(0xcd);
        *emit_p++ = c->vector;
        break;
    case I_INTO: EMIT(0xce); break;
    case I_INT1: EMIT(0xf1); break;
    case I_CALLGATE: {
        u16 sel = gate_selector(c);
        if (compat) {                   /* CALL ptr16:32 (9A), invalid in 64-bit mode */
            EMIT(0x9a, 0, 0, 0, 0);
            *emit_p++ = (u8)sel;
            *emit_p++ = (u8)(sel >> 8);
        } else {                        /* CALL m16:32 (FF /3, ModRM 0x18 = [rax]) */
            u8 *m = (u8 *)DATA_ADDR;
            memset(m, 0, 4);
            m[4] = (u8)sel;
            m[5] = (u8)(sel >> 8);
            r->rax = DATA_ADDR;
            EMIT(0xff, 0x18);
        }
        break;
    }
    case I_SYSCALL: EMIT(0x0f, 0x05); break;
    case I_SYSENTER: EMIT(0x0f, 0x34); break;
    case I_UD0: EMIT(0x0f, 0xff, 0xc0); break;
    case I_UD1: EMIT(0x0f, 0xb9, 0xc0); break;
    case I_UD2: EMIT(0x0f, 0x0b); break;
    case I_BOUND: {                     /* BOUND eax, [ebx] = 62 03; bounds [0, 10] */
        u32 *m = (u32 *)DATA_ADDR;
        m[0] = 0;
        m[1] = 10;
        r->rbx = DATA_ADDR;
        r->rax = (c->flags & F_BOUND_IN) ? 5 : 20;
        EMIT(0x62, 0x03);
        break;
    }
    default:
        panic("bad-insn", c->id, c->insn);
    }
}

/* After the instruction: NOP (so INT n's "next instruction" differs from the completion
 * fault's RIP), then an instruction that faults through a vector whose gate is present. */
static void emit_completion(void)
{
    EMIT(0x90);
    if (idt_present[6]) {
        done_vector = 6;                /* UD2 -> #UD */
        done_rip = (u64)emit_p;
        EMIT(0x0f, 0x0b);
    } else if (idt_present[0]) {
        done_vector = 0;                /* xor ecx,ecx; div ecx -> #DE */
        EMIT(0x31, 0xc9);
        done_rip = (u64)emit_p;
        EMIT(0xf7, 0xf1);
    } else {
        done_vector = 14;               /* mov ecx, UNMAPPED; mov eax,[rcx] -> #PF */
        EMIT(0xb9, 0x00, 0x00, 0x00, 0x40);
        done_rip = (u64)emit_p;
        EMIT(0x8b, 0x01);
    }
    EMIT(0xeb, 0xfe);                   /* jmp . (never reached) */
}

static void entry_case(const struct case_rec *c, struct entry_regs *r)
{
    int cpl = c->cpl & 3, compat = c->mode == MODE_COMPAT;
    if (cpl == 0) {
        r->cs = compat ? SEL_COMPAT0 : SEL_CODE0;
        r->ss = r->ds = SEL_DATA0;
    } else {
        r->cs = (u64)(((3 * cpl + (compat ? 0 : 2)) << 3) | cpl);
        r->ss = r->ds = (u64)(((3 * cpl + 1) << 3) | cpl);
    }
    r->rip = STUB_ADDR;
    r->rsp = USER_STACK - 16;
    r->rflags = 0x202 | ((c->flags & F_OF) ? 0x800 : 0);   /* IF=1, IOPL=0 */
}

static void __attribute__((noreturn)) run_case(u32 idx)
{
    if (idx >= table->ncases)
        finish("PVSMT END\n");
    const struct case_rec *c = &cases[idx];
    struct entry_regs r = { 0 };
    cur = idx;
    idt_case(c);
    msr_case(c);
    if (c->insn == I_CALLGATE)
        gate_case(c);
    entry_case(c, &r);
    emit_p = (u8 *)STUB_ADDR;
    insn_start = STUB_ADDR;
    emit_insn(c, &r);
    insn_end = (u64)emit_p;
    emit_completion();
    in_test = 1;
    enter_test(&r);
}

/* Undo the case's changes and go on with the next one. */
static void __attribute__((noreturn)) next_case(void)
{
    const struct case_rec *c = &cases[cur];
    in_test = 0;
    reset_segments();
    if (c->insn == I_CALLGATE)
        gate_restore(c);
    idt_restore(c);
    run_case(cur + 1);
}

static void case_prefix(void)
{
    puts("C ");
    puthex(cases[cur].id);
}

/* ---- events ----------------------------------------------------------------------- */

/* f: [rflags_now, vector, (error code), rip, cs, rflags, rsp, ss] on the IST1 stack */
void __attribute__((noreturn)) isr_c(u64 *f)
{
    u64 vector = f[1];
    u64 frame_bytes = (u64)ist1_top - (u64)(f + 2);
    int has_err = frame_bytes == 48;
    u64 err = has_err ? f[2] : 0;
    u64 rip = f[has_err ? 3 : 2];
    if (!in_test) {
        reset_segments();
        panic("kernel-event", vector, rip);
    }
    reset_segments();
    case_prefix();
    if ((int)vector == done_vector && rip == done_rip) {
        puts(" N");
        endline();
        next_case();
    }
    puts(" I ");
    puthex(vector);
    putc(' ');
    if (has_err) puthex(err); else putc('-');
    put_at(rip);
    puts((f[0] & 0x200) ? " T" : " I");
    endline();
    next_case();
}

/* which: 1 LSTAR, 2 CSTAR, 3 SYSENTER, 4 call gate; rip: RCX or pushed return RIP */
void __attribute__((noreturn)) landing_c(int which, u64 rip)
{
    reset_segments();
    if (!in_test)
        panic("kernel-landing", (u64)which, rip);
    case_prefix();
    switch (which) {
    case 1: puts(" S L"); put_at(rip); break;
    case 2: puts(" S C"); put_at(rip); break;
    case 3: puts(" E"); break;
    default: puts(" G"); put_at(rip); break;
    }
    endline();
    next_case();
}

/* ---- boot ------------------------------------------------------------------------- */

static void pic_mask(void)
{
    outb(0x21, 0xff);           /* 8259A: mask every IRQ, no hardware interrupt reaches */
    outb(0xa1, 0xff);           /* the test code even though it runs with IF=1 */
}

static void put_vendor(void)
{
    u32 a = 0, b, c, d;
    __asm__ volatile("cpuid" : "+a"(a), "=b"(b), "=c"(c), "=d"(d));
    u32 v[3] = { b, d, c };
    const char *s = (const char *)v;
    for (int i = 0; i < 12; i++) putc(s[i]);
}

void __attribute__((noreturn)) kmain(void)
{
    serial_init();
    pic_mask();
    table = (const struct table_hdr *)(u64)*(volatile u32 *)(BOOT_ADDR + HDR_TABLE);
    if (table->magic != 0x54435650)     /* 'PVCT' */
        panic("bad-table", (u64)table, table->magic);
    cases = (const struct case_rec *)(table + 1);
    ovrs = (const struct idt_ovr *)(cases + table->ncases);
    gdt_init();
    idt_init();
    msr_init();
    puts("PVSMT START ");
    put_vendor();
    putc(' ');
    puthex(table->ncases);
    endline();
    run_case(0);
}
