/*
 * pvsmt PV test guest (dom0): runs the case table from the initrd module,
 * one console line per case.  See ../README.md ("PV test guest") for the
 * table and the console protocol.  Structure layouts follow Xen's public
 * headers (xen.h: start_info, trap_info, mmuext_op; callback.h:
 * callback_register; arch-x86/xen-x86_{64,32}.h: xen_callback_t).
 */
#include "layout.h"

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef unsigned long ulong;
typedef long slong;

struct start_info {
    char magic[32];
    ulong nr_pages, shared_info;
    u32 flags;
    ulong store_mfn;
    u32 store_evtchn;
    union { struct { ulong mfn; u32 evtchn; } domU; struct { u32 off, size; } dom0; } console;
    ulong pt_base, nr_pt_frames, mfn_list, mod_start, mod_len;
};

struct trap_info { u8 vector, flags; u16 cs; ulong address; };

struct callback_register {
    u16 type, flags;
#ifndef __x86_64__
    ulong cs;
#endif
    ulong address;
};

struct mmuext_op { u32 cmd; ulong arg1, arg2; };

/* case table (pvsmt/validate/xencases.py) */
#define TABLE_MAGIC 0x47585650u
struct table_head { u32 magic, ncases, noverrides, guest; };
struct case_rec {
    u32 id;
    u8 insn, guest_mode, mode, vector, prefix, flags, flags2, gate;
    u16 gate_sel, ovr_count;
    u32 ovr_first;
} __attribute__((packed));
struct ovr_rec { u8 vector, present, vdpl, pad; };

enum { I_INT3, I_INT_N, I_INTO, I_INT1, I_CALLGATE, I_SYSCALL, I_SYSENTER,
       I_UD0, I_UD1, I_UD2, I_BOUND };
#define F_OF        0x01
#define F_BOUND_IN  0x02
#define F_TT_IF     0x04
#define F_CB_SC     0x08
#define F_CB_SC32   0x10
#define F_CB_SE     0x20
#define F_CB_SC_M   0x40
#define F_CB_SC32_M 0x80
#define F2_CB_SE_M  0x01
/* gate: the call gate a callgate case's selector names (xencases.py) */
#define G_PRESENT   0x01        /* the P bit as written */
#define G_DPL(g)    (((g) >> 1) & 3)
#define G_IN_LIMIT  0x08        /* the selector is within the table's limit */
#define G_TRPL(g)   (((g) >> 4) & 3)    /* not present: the target selector's RPL */
#define G_FRESH     0x40        /* LDT: write into a page Xen has not validated */

extern u8 hypercall_page[], trap_stubs[], user_stub[], user_data[], event_stack_top[];
extern u8 shinfo_page[], gdt_pages[], ldt_pages[];
extern void cb_syscall(void), cb_syscall32(void), cb_sysenter(void), cb_upcall(void),
            cb_failsafe(void), cb_gate(void);
extern ulong saved_rax;
extern u32 arrival_mask;
extern u8 *vcpu_mask_ptr;
extern void enter_kernel(void *stub) __attribute__((noreturn));
#ifdef __x86_64__
extern void enter_kernel_compat(void *stub) __attribute__((noreturn));
extern void enter_user(void *stub, ulong cs) __attribute__((noreturn));
#else
extern void enter_user(void *stub) __attribute__((noreturn));
#endif

#ifdef __x86_64__
#define ERR_SLOT 2      /* rcx, r11, error code, rip, ... */
#else
#define ERR_SLOT 0      /* error code, eip, ... */
#endif

/* the compiler may emit calls to these */
void *memset(void *d, int c, ulong n) { u8 *p = d; while (n--) *p++ = (u8)c; return d; }
void *memcpy(void *d, const void *s, ulong n)
{ u8 *p = d; const u8 *q = s; while (n--) *p++ = *q++; return d; }

static struct start_info *si;
static const struct table_head *table;
static const struct case_rec *cases;
static const struct ovr_rec *ovrs;
static u32 cur, in_case;
static ulong xen_ver;
static u8 *insn_at, *compl_at;
static u32 compl_vec, preset_eax;
static struct trap_info tt[257];

/* ---- hypercalls through the hypercall page ---- */
static slong hcall(u32 nr, ulong a1, ulong a2, ulong a3, ulong a4, ulong a5)
{
    void *fn = hypercall_page + nr * 32;
    slong ret;
#ifdef __x86_64__
    register ulong r10 asm("r10") = a4;
    register ulong r8 asm("r8") = a5;
    asm volatile("call *%[fn]"
                 : "=a"(ret), "+D"(a1), "+S"(a2), "+d"(a3), "+r"(r10), "+r"(r8)
                 : [fn] "m"(fn) : "memory", "rcx", "r11", "r9");
#else
    asm volatile("call *%[fn]"
                 : "=a"(ret), "+b"(a1), "+c"(a2), "+d"(a3), "+S"(a4), "+D"(a5)
                 : [fn] "m"(fn) : "memory");
#endif
    return ret;
}

/* ---- console ---- */
static char line[200];
static u32 llen;

static void put_c(char c) { if (llen < sizeof(line) - 2) line[llen++] = c; }
static void put_s(const char *s) { while (*s) put_c(*s++); }
static void put_x(u64 v)
{
    char buf[17];
    int n = 0;
    do { buf[n++] = "0123456789abcdef"[v & 15]; v >>= 4; } while (v);
    while (n) put_c(buf[--n]);
}
static void put_off(slong off)
{
    if (off < 0) { put_c('-'); put_x((u64)-off); }
    else { put_c('+'); put_x((u64)off); }
}
static void flush(void)
{
    line[llen++] = '\n';
    hcall(HC_console_io, CONSOLEIO_write, llen, (ulong)line, 0, 0);
    llen = 0;
}

static void __attribute__((noreturn)) stop(void)
{
    for (;;)
        hcall(HC_sched_op, SCHEDOP_yield, 0, 0, 0, 0);
}

static void __attribute__((noreturn)) panic(const char *what, u64 a, u64 b)
{
    llen = 0;
    put_s("PVSMT PANIC "); put_s(what); put_c(' '); put_x(a); put_c(' '); put_x(b);
    flush();
    stop();
}

static u64 mfn_of(void *va)
{
    ulong pfn = ((ulong)va - VIRT_BASE) >> 12;
    return ((ulong *)si->mfn_list)[pfn];
}

static slong map_page(void *va, u64 maddr_flags)
{
#ifdef __x86_64__
    return hcall(HC_update_va_mapping, (ulong)va, maddr_flags, UVMF_INVLPG, 0, 0);
#else
    return hcall(HC_update_va_mapping, (ulong)va, (u32)maddr_flags,
                 (u32)(maddr_flags >> 32), UVMF_INVLPG, 0);
#endif
}

static slong reg_callback(u32 type, void (*fn)(void), int mask)
{
    struct callback_register r = { 0 };
    r.type = type;
    r.flags = mask ? CALLBACKF_mask_events : 0;
#ifndef __x86_64__
    /* "not registered" is a null selector as well as address 0: compat_syscall
     * tests the selector (x86_64/compat/entry.S L210-216, testl $~3,%esi), not the
     * address, so address 0 with FLAT_RING1_CS would be bounced to EIP 0 (the
     * syscall bounce frame, 20 bytes, then a #PF frame on top: 36 bytes); sysenter_entry
     * tests the address (x86_64/entry.S L413-425, testq %rax,%rax) */
    r.cs = fn ? KERNEL_CS : 0;
#endif
    r.address = (ulong)fn;
    return hcall(HC_callback_op, CALLBACKOP_register, (ulong)&r, 0, 0, 0);
}

#define PTE_FLAGS 0x67ull   /* present, writable, user, accessed, dirty */
#define PTE_RO    0x25ull   /* present, user, accessed: no writable mapping */

/* ---- call gates: the guest's GDT and LDT ---- */
static u64 gate_ma;         /* the descriptor the last case wrote (0: none) */
static u32 ldt_ents;        /* the LDT's size as last set (0: no LDT) */

static u64 maddr_of(void *va)
{
    return (mfn_of(va) << 12) | ((ulong)va & 0xfff);
}

static slong write_desc(u64 ma, u64 desc)
{
#ifdef __x86_64__
    return hcall(HC_update_descriptor, ma, desc, 0, 0, 0);
#else
    return hcall(HC_update_descriptor, (u32)ma, (u32)(ma >> 32), (u32)desc,
                 (u32)(desc >> 32), 0);
#endif
}

static slong set_ldt(u32 ents)
{
    struct mmuext_op op = { MMUEXT_SET_LDT, (ulong)ldt_pages, ents };
    return hcall(HC_mmuext_op, (ulong)&op, 1, 0, DOMID_SELF, 0);
}

/*
 * Descriptor pages must have no writable mapping: Xen takes a GDT frame
 * (set_gdt) or an LDT page (mapped on first use) as a segment-descriptor page
 * (pv/descriptor-tables.c L86-92, pv/mm.c L76-88), validating all 512
 * descriptors (descriptor-tables.c L273-286; zeros are not present, accepted).
 * The GDT is every frame a guest may own; the LDT is set per case.
 */
static void desc_tables_init(void)
{
    ulong frames[GDT_PAGES];
    slong rc;

    for (u8 *va = gdt_pages; va < ldt_pages + LDT_PAGES * 4096; va += 4096) {
        rc = map_page(va, (mfn_of(va) << 12) | PTE_RO);
        if (rc) panic("map-desc", (u64)-rc, (ulong)va);
    }
    for (u32 i = 0; i < GDT_PAGES; i++)
        frames[i] = mfn_of(gdt_pages + 4096 * i);
    rc = hcall(HC_set_gdt, (ulong)frames, GDT_ENTS, 0, 0, 0);
    if (rc) panic("set_gdt", (u64)-rc, 0);
}

/*
 * A call gate (type 0xC, no parameters) to cb_gate.  Present: the target must be
 * the kernel's flat code selector (FLAT_KERNEL_CS / FLAT_COMPAT_KERNEL_CS,
 * asm/desc.h L72-77); Xen's audit then clears the DPL and keeps it, ring-
 * compressed, in the target selector's RPL (descriptor-tables.c L196-199,
 * L242-258).  Not present: accepted unchanged (L192-194), so the target's RPL is
 * the guest's; read_gate_descriptor takes a DPL-0 gate's DPL from it
 * (pv/emul-gate-op.c L44-46).  A 64-bit gate's second half (offset 63:32, all
 * zero here) is the next, zeroed descriptor.
 */
static u64 gate_desc(u8 g)
{
    ulong off = (ulong)cb_gate;
    u32 sel = (g & G_PRESENT) ? KERNEL_CS : (KERNEL_CS & ~3) | G_TRPL(g);
    u32 a = (sel << 16) | (off & 0xffff);
    u32 b = (off & 0xffff0000u) | ((g & G_PRESENT) ? 0x8000 : 0) | (G_DPL(g) << 13) | 0xc00;
    return ((u64)b << 32) | a;
}

static slong resize_ldt(u32 ents)
{
    slong rc = 0;
    if (ents != ldt_ents && (rc = set_ldt(ents)) == 0) ldt_ents = ents;
    return rc;
}

/*
 * Xen takes a page as a descriptor page (validate_segdesc_page) only while it
 * holds no gate yet: an audited gate is not always accepted a second time.  The
 * audit stores the DPL in the target selector's RPL (descriptor-tables.c
 * L256-258), and the re-check accepts FLAT_COMPAT_KERNEL_CS only with RPL 1
 * (asm/desc.h L72-77): a PV32 gate of DPL 2 or 3 written with update_descriptor
 * into a page that is not yet a descriptor page makes Xen reject the page when
 * the LDT maps it (pv/mm.c L84-88, mm.c L2657-2666), and the CPU's LDT access
 * becomes the guest's #PF (traps.c L1514-1516).  So the LDT page is touched
 * (LAR reads its descriptor: Xen maps it on the fault) before the gate is
 * written, unless the case asks for that #PF (G_FRESH).
 */
static void ldt_touch(u32 index)
{
    u32 ar;
    asm volatile("lar %1, %0" : "=r"(ar) : "r"(index << 3 | 4) : "cc");
}

/* The LDT page of `index` made an ordinary page again: unmapped from the LDT,
 * mapped writable (Xen retypes it) and read-only again. */
static slong ldt_unvalidate(u32 index)
{
    u8 *page = ldt_pages + (8 * index & ~0xfffu);
    slong rc = resize_ldt(0);
    if (!rc) rc = map_page(page, (mfn_of(page) << 12) | PTE_FLAGS);
    if (!rc) rc = map_page(page, (mfn_of(page) << 12) | PTE_RO);
    return rc;
}

/* The case's gate: the last case's one cleared, the LDT sized to hold this one
 * (or to end just before it), this one written within the table's limit. */
static slong gate_setup(const struct case_rec *c)
{
    u32 index = c->gate_sel >> 3, ldt = c->gate_sel & 4, fresh = c->gate & G_FRESH;
    u8 *desc = (ldt ? ldt_pages : gdt_pages) + 8 * index;
    slong rc = 0;

    if (gate_ma) {
        rc = write_desc(gate_ma, 0);
        gate_ma = 0;
        if (rc) return rc;
    }
    if (c->insn != I_CALLGATE || !(c->gate_sel & ~3))
        return resize_ldt(0);
    if (!(c->gate & G_IN_LIMIT))
        return resize_ldt(ldt ? index : 0);
    if (index + 1 >= (ldt ? LDT_ENTS : GDT_ENTS))
        return -1000;
    if (ldt) {
        if (fresh) rc = ldt_unvalidate(index);
        if (!rc) rc = resize_ldt(LDT_ENTS);
        if (rc) return rc;
        if (!fresh) ldt_touch(index);
    }
    gate_ma = maddr_of(desc);
    return write_desc(gate_ma, gate_desc(c->gate));
}

static void case_error(const char *what, slong rc)
{
    put_s("PVSMT C "); put_x(cases[cur].id); put_s(" U "); put_s(what); put_c(' ');
    put_off(rc);
    flush();
}

static void __attribute__((noreturn)) run_cases(void);

/* ---- building the stub: [setup] insn 90 [completion] ---- */
static u8 *emit(u8 *p, const u8 *b, u32 n) { while (n--) *p++ = *b++; return p; }
static u8 *emit32(u8 *p, u32 v) { for (int i = 0; i < 4; i++) *p++ = (u8)(v >> (8 * i)); return p; }

static int build_stub(const struct case_rec *c, int compat, const u8 *present)
{
    u8 *p = user_stub;
    u32 eax = HC_xen_version;
    u32 *bounds = (u32 *)user_data;
    u8 *farptr = user_data + 16;

    if (c->insn == I_BOUND)
        eax = (c->flags & F_BOUND_IN) ? 5 : 20;
    if (c->insn == I_CALLGATE) {
        eax = (u32)(ulong)farptr;
        *(u32 *)farptr = (u32)(ulong)(user_stub + 0x800);
        *(u16 *)(farptr + 4) = c->gate_sel;
    }
    bounds[0] = 0;
    bounds[1] = 10;
    *p++ = 0xB8; p = emit32(p, eax);                       /* mov $eax, %eax */
    p = emit(p, (const u8 []){0x31, 0xFF, 0x31, 0xF6, 0x31, 0xD2, 0x31, 0xC9}, 8);
    if (c->insn == I_BOUND) { *p++ = 0xBB; p = emit32(p, (u32)(ulong)bounds); }
    else p = emit(p, (const u8 []){0x31, 0xDB}, 2);      /* xor %ebx, %ebx */
    if (c->insn == I_INTO && (c->flags & F_OF)) {
        p = emit(p, (const u8 []){0xB0, 0x7F, 0x04, 0x01}, 4);  /* OF = 1 */
        eax = (eax & ~0xffu) | 0x80;
    }
    preset_eax = eax;

    insn_at = p;
    switch (c->insn) {
    case I_INT3: *p++ = 0xCC; break;
    case I_INT_N:
        if (c->prefix == 1) *p++ = 0x66;
        if (c->prefix == 2) *p++ = 0x48;
        *p++ = 0xCD; *p++ = c->vector;
        break;
    case I_INTO: *p++ = 0xCE; break;
    case I_INT1: *p++ = 0xF1; break;
    case I_CALLGATE:
        if (compat) { *p++ = 0x9A; p = emit32(p, (u32)(ulong)(user_stub + 0x800));
                      *p++ = (u8)c->gate_sel; *p++ = (u8)(c->gate_sel >> 8); }
        else p = emit(p, (const u8 []){0xFF, 0x18}, 2);
        break;
    case I_SYSCALL: p = emit(p, (const u8 []){0x0F, 0x05}, 2); break;
    case I_SYSENTER: p = emit(p, (const u8 []){0x0F, 0x34}, 2); break;
    case I_UD0: p = emit(p, (const u8 []){0x0F, 0xFF, 0xC0}, 3); break;
    case I_UD1: p = emit(p, (const u8 []){0x0F, 0xB9, 0xC0}, 3); break;
    case I_UD2: p = emit(p, (const u8 []){0x0F, 0x0B}, 2); break;
    case I_BOUND: p = emit(p, (const u8 []){0x62, 0x03}, 2); break;
    default: return -1;
    }
    *p++ = 0x90;
    if (present[6]) {
        compl_vec = 6; compl_at = p;
        p = emit(p, (const u8 []){0x0F, 0x0B}, 2);
    } else if (present[0]) {
        p = emit(p, (const u8 []){0x31, 0xC9}, 2);
        compl_vec = 0; compl_at = p;
        p = emit(p, (const u8 []){0xF7, 0xF1}, 2);
    } else if (present[14]) {
        compl_vec = 14; compl_at = p;
        if (compat) *p++ = 0xA1;
        else p = emit(p, (const u8 []){0x8B, 0x04, 0x25}, 3);
        p = emit32(p, 0x40000000);
    } else
        return -2;
    *p++ = 0xF4;
    return 0;
}

static void __attribute__((noreturn)) run_case(const struct case_rec *c)
{
    u8 present[256], vdpl[256];
    u32 n = 0;
    slong rc;

    for (u32 v = 0; v < 256; v++) { present[v] = 1; vdpl[v] = 0; }
    for (u32 i = 0; i < c->ovr_count; i++) {
        const struct ovr_rec *o = &ovrs[c->ovr_first + i];
        present[o->vector] = o->present;
        vdpl[o->vector] = o->vdpl & 3;
    }
    for (u32 v = 0; v < 256; v++) {
        if (!present[v]) continue;
        tt[n].vector = (u8)v;
        tt[n].flags = vdpl[v] | ((c->flags & F_TT_IF) ? 4 : 0);
        tt[n].cs = KERNEL_CS;
        tt[n].address = (ulong)(trap_stubs + 16 * v);
        n++;
    }
    tt[n].vector = 0; tt[n].flags = 0; tt[n].cs = 0; tt[n].address = 0;
    int compat = c->mode == 1;
    rc = build_stub(c, compat, present);
    if (rc) { case_error("stub", rc); cur++; run_cases(); }
    rc = gate_setup(c);
    if (rc) { case_error("gate", rc); cur++; run_cases(); }

    rc = hcall(HC_set_trap_table, 0, 0, 0, 0, 0);
    if (!rc) rc = hcall(HC_set_trap_table, (ulong)tt, 0, 0, 0, 0);
    if (rc) { case_error("set_trap_table", rc); cur++; run_cases(); }
#ifdef __x86_64__
    rc = reg_callback(CALLBACKTYPE_syscall, (c->flags & F_CB_SC) ? cb_syscall : 0,
                      c->flags & F_CB_SC_M);
    if (rc) { case_error("cb_syscall", rc); cur++; run_cases(); }
#endif
    rc = reg_callback(CALLBACKTYPE_syscall32, (c->flags & F_CB_SC32) ? cb_syscall32 : 0,
                      c->flags & F_CB_SC32_M);
    if (rc) { case_error("cb_syscall32", rc); cur++; run_cases(); }
    rc = reg_callback(CALLBACKTYPE_sysenter, (c->flags & F_CB_SE) ? cb_sysenter : 0,
                      c->flags2 & F2_CB_SE_M);
    if (rc) { case_error("cb_sysenter", rc); cur++; run_cases(); }

    in_case = 1;
#ifdef __x86_64__
    if (c->guest_mode == 1)
        enter_user(user_stub, compat ? USER_CS32 : USER_CS64);
    if (compat)
        enter_kernel_compat(user_stub);
    enter_kernel(user_stub);
#else
    if (c->guest_mode == 1)
        enter_user(user_stub);
    enter_kernel(user_stub);
#endif
}

static void __attribute__((noreturn)) run_cases(void)
{
    if (cur < table->ncases)
        run_case(&cases[cur]);
    put_s("PVSMT END");
    flush();
    stop();
}

static const char *cb_name(u32 id)
{
    switch (id) {
    case EV_SYSCALL: return "syscall";
    case EV_SYSCALL32: return "syscall32";
    case EV_SYSENTER: return "sysenter";
    case EV_UPCALL: return "upcall";
    default: return "failsafe";
    }
}

/* The far CALL arrived at the gate's target: its frame is the return address and
 * the caller's CS, plus the caller's stack pointer and SS from an outer ring
 * (pv/emul-gate-op.c L337-338, L396-397).  <at> is the return address. */
static void __attribute__((noreturn)) on_gate(const struct case_rec *c, ulong *frame, ulong size)
{
    if (size != 2 * sizeof(ulong) && size != 4 * sizeof(ulong))
        panic("frame-size", EV_GATE, size);
    put_s("PVSMT C "); put_x(c->id); put_s(" G ");
    put_off((slong)(frame[0] - (ulong)insn_at));
    put_c(' '); put_x(arrival_mask & 0xff);
    put_c(' '); put_x(frame[1] & 0xffff);
    flush();
    cur++;
    run_cases();
}

/* called by event_common on the main stack; frame = guest stack at the stub */
void __attribute__((noreturn)) on_event(ulong id, ulong *frame)
{
    const struct case_rec *c = &cases[cur];
    ulong base = (ulong)event_stack_top, size = base - (ulong)frame, rip, cs;
    int err;

    if (!in_case)
        panic("event-outside-case", id, (u64)(ulong)frame);
    in_case = 0;
    if (id == EV_GATE)
        on_gate(c, frame, size);
#ifdef __x86_64__
    if (size != 56 && size != 64)
        panic("frame-size", id, size);
    err = size == 64;
    rip = *(ulong *)(base - 40);
    cs = *(ulong *)(base - 32);
#else
    {
        /* from ring 1: eip cs eflags (12) [+ error code]; from ring 3 (or
         * Xen's SYSENTER frame) + esp ss (20) [+ error code]: all distinct */
        ulong lo = size >= 20 ? 20 : 12;
        if (size != lo && size != lo + 4)
            panic("frame-size", id, size);
        err = size == lo + 4;
        rip = frame[err];
        cs = frame[err + 1];
    }
#endif
    put_s("PVSMT C "); put_x(c->id); put_c(' ');
    if (id < 256 && id == compl_vec && rip == (ulong)compl_at) {
        /* EAX changed on the way: a hypercall was made (ok: xen_version's value) */
        if ((u32)saved_rax != preset_eax) {
            put_s("H "); put_x((u32)saved_rax);
            put_s((u32)saved_rax == (u32)xen_ver ? " 1" : " 0");
        } else put_s("N");
    } else {
        if (id < 256) {
            put_s("X "); put_x(id); put_c(' ');
            if (err) put_x(frame[ERR_SLOT]); else put_c('-');
        } else {
            put_s("B "); put_s(cb_name(id));
        }
        put_c(' ');
        if (rip == 0) put_c('Z'); else put_off((slong)(rip - (ulong)insn_at));
        put_c(' '); put_x(arrival_mask & 0xff);
        put_c(' '); put_x(cs & 0xffff);
    }
    flush();
    cur++;
    run_cases();
}

void __attribute__((noreturn)) guest_main(struct start_info *start)
{
    slong rc;

    si = start;
    rc = map_page(shinfo_page, (u64)si->shared_info | PTE_FLAGS);
    if (rc) panic("map-shared-info", (u64)-rc, si->shared_info);
    vcpu_mask_ptr = shinfo_page + 1;     /* vcpu_info[0].evtchn_upcall_mask */
    *vcpu_mask_ptr = 1;
#ifdef __x86_64__
    {
        struct mmuext_op op = { MMUEXT_NEW_USER_BASEPTR, mfn_of((void *)si->pt_base), 0 };
        rc = hcall(HC_mmuext_op, (ulong)&op, 1, 0, DOMID_SELF, 0);
        if (rc) panic("user-baseptr", (u64)-rc, 0);
    }
#else
    for (u8 *va = user_stub; va < event_stack_top; va += 4096) {
        rc = map_page(va, (mfn_of(va) << 12) | PTE_FLAGS);
        if (rc) panic("map-user", (u64)-rc, (ulong)va);
    }
#endif
    desc_tables_init();
    rc = hcall(HC_stack_switch, KERNEL_SS, (ulong)event_stack_top, 0, 0, 0);
    if (rc) panic("stack_switch", (u64)-rc, 0);
    if (reg_callback(CALLBACKTYPE_event, cb_upcall, 1) ||
        reg_callback(CALLBACKTYPE_failsafe, cb_failsafe, 1))
        panic("callbacks", 0, 0);
    xen_ver = (ulong)hcall(HC_xen_version, XENVER_version, 0, 0, 0, 0);

    table = (const struct table_head *)si->mod_start;
    if (si->mod_len < sizeof(*table) || table->magic != TABLE_MAGIC)
        panic("no-case-table", si->mod_len, si->mod_start);
#ifdef __x86_64__
    if (table->guest != 0) panic("wrong-guest", table->guest, 0);
#else
    if (table->guest != 1) panic("wrong-guest", table->guest, 1);
#endif
    cases = (const struct case_rec *)(table + 1);
    ovrs = (const struct ovr_rec *)(cases + table->ncases);
    put_s("PVSMT START ");
#ifdef __x86_64__
    put_s("pv64 ");
#else
    put_s("pv32 ");
#endif
    put_x(table->ncases); put_c(' '); put_x(xen_ver);
    flush();
    run_cases();
}
