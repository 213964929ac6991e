"""`pvsmt extract` on the real Xen trees of /work/shared/xen (or $PVSMT_XEN_ARCHIVES): every release
from 4.14 to master reads under each variant, with the facts checked against the sources (read by
hand: file and line below).  The archives are unpacked once into ~/.cache/pvsmt-test-xen
($PVSMT_XEN_CACHE); without them the tests skip, unless PVSMT_REQUIRE_XEN=1.

Also the no-silent-misread cases on small trees written here: an IDT array renamed, GEN lines
out of order, guards around the MSR writes, a later EFER write, shapes not understood."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from pvsmt.xen import extract as ex
from pvsmt.xen import source as xs
from pvsmt.errors import InputError
from pvsmt.xen.releases import model_of

ARCHIVES = Path(os.environ.get("PVSMT_XEN_ARCHIVES", "/work/shared/xen"))
CACHE = Path(os.environ.get("PVSMT_XEN_CACHE", Path.home() / ".cache" / "pvsmt-test-xen"))
RELEASES = ["xen-RELEASE-4.14.0", "xen-RELEASE-4.17.0", "xen-RELEASE-4.19.0", "xen-RELEASE-4.20.0",
            "xen-RELEASE-4.21.0", "xen-RELEASE-4.22.0", "xen-c447b7308b"]


def real_tree(name: str) -> Path:
    archive = ARCHIVES / f"{name}.tar.xz"
    if not archive.exists():
        if os.environ.get("PVSMT_REQUIRE_XEN") == "1":
            pytest.fail(f"{archive} is missing and PVSMT_REQUIRE_XEN=1")
        pytest.skip(f"{archive} not present (set PVSMT_XEN_ARCHIVES, or PVSMT_REQUIRE_XEN=1 to fail)")
    root = CACHE / name
    done = CACHE / f".{name}.unpacked"
    if not done.exists():                    # unpack once, into a scratch directory renamed when complete
        scratch = CACHE / f".{name}.{os.getpid()}"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        with tarfile.open(archive) as tar:
            tar.extractall(scratch, filter="data")
        if not root.exists():
            (scratch / name).rename(root)
        shutil.rmtree(scratch, ignore_errors=True)
        done.touch()
    return root


def extracted(name: str, variant: str = "pv", fred: bool = False) -> tuple[ex.Extraction, str]:
    from pvsmt.lang.parse import SpecLoader
    config, source = ex.configuration(None, variant)
    result = ex.extract(real_tree(name), config, source, with_fred=fred)
    return result, ex.spec_text(result, "tree", SpecLoader())


def gate(result: ex.Extraction, v: int) -> tuple[int, str, str]:
    g = result.gates[v]
    return g.dpl, g.type, ex.entry_of(g)


# release, (0x80 gate type, 0x82 gate type), swint_emul, FRED (None: impossible; else per-vendor default), model
EXPECTED = {
    # 4.14.0 pv/traps.c L159-164, 4.17.0 pv/traps.c L151-157: SYS_DESC_trap_gate for 0x82 and 0x80
    "xen-RELEASE-4.14.0": ((4, 14, ".0"), "trap", "plus2", None, None),
    "xen-RELEASE-4.17.0": ((4, 17, ".0"), "trap", "plus2", None, "xen-4.17.0"),
    # 4.19.0 pv/traps.c L142-148: SYS_DESC_irq_gate (XSA-446)
    "xen-RELEASE-4.19.0": ((4, 19, ".0"), "interrupt", "plus2", None, "xen-4.20"),
    "xen-RELEASE-4.20.0": ((4, 20, ".0"), "interrupt", "plus2", None, "xen-4.20"),
    # 4.21.0 traps-setup.c L25-26 (opt_fred = 0, boolean_param), traps.c L1368 (rip += 2)
    "xen-RELEASE-4.21.0": ((4, 21, ".0"), "interrupt", "plus2", {"intel": False, "amd": False}, "xen-4.20"),
    # 4.22.0/master traps-setup.c L394-395 (-1: AMD && !pv_shim), traps.c L1449 (pv_emulate_sw_interrupt)
    "xen-RELEASE-4.22.0": ((4, 22, ".0"), "interrupt", "decoded", {"intel": False, "amd": True}, "xen"),
    "xen-c447b7308b": ((4, 23, "-unstable"), "interrupt", "decoded", {"intel": False, "amd": True}, "xen"),
}


@pytest.mark.parametrize("name", RELEASES)
def test_every_release_reads_with_its_facts(name):
    release, gtype, swint, fred, model = EXPECTED[name]
    result, text = extracted(name)
    assert xs.tree_release(result.tree) == release and model_of(release) == model
    assert f"# xen-release: {xs.release_text(release)}" in text and f'"Xen {xs.release_text(release)} ' in text
    assert gate(result, 0x80) == (3, gtype, "int80") and gate(result, 0x82) == (1, gtype, "int82")
    assert gate(result, 3)[0] == 3 and gate(result, 4)[0] == 3
    assert all(gate(result, v)[0] == 0 for v in range(256) if v not in (3, 4, 0x80, 0x82))
    assert all(g.type == "interrupt" for v, g in result.gates.items() if v not in (0x80, 0x82))
    assert f"set swint_emul = {swint}\n" in text
    assert "set efer.sce = 1" in text and "set gate_audit = 1" in text
    assert result.sysenter_cs["intel"][0] == "nonnull" and result.sysenter_cs["amd"][0] == "null"
    support = result.fred_support
    assert (support.default if support else None) == fred
    cites = [line for line in text.splitlines() if line.strip().startswith("cite")]
    assert cites and not [c for c in cites if str(CACHE) in c or "/tmp" in c]   # relative to the tree


@pytest.mark.parametrize("name", RELEASES)
def test_every_release_reads_without_pv32_and_without_pv(name):
    result, text = extracted(name, "pv32-n")
    # CONFIG_PV32 first appears in 4.17 (pv/traps.c L149 #ifdef); 4.14 writes 0x82 unconditionally
    assert gate(result, 0x82) == ((1, EXPECTED[name][1], "int82") if name.endswith("4.14.0") else (0, "interrupt", "irq"))
    result, text = extracted(name, "pv-n")
    assert gate(result, 0x80) == (0, "interrupt", "irq") and gate(result, 0x82) == (0, "interrupt", "irq")
    assert "set efer.sce = 0" in text and "set gate_audit = 0" in text and "set swint_emul" not in text
    assert result.sysenter_cs["intel"][0] == "null"


@pytest.mark.parametrize("name", RELEASES)
def test_fred_on_only_where_the_tree_has_it(name):
    if EXPECTED[name][3] is None:
        with pytest.raises(InputError) as err:
            extracted(name, fred=True)
        assert str(err.value).startswith(f"{real_tree(name)}/xen/Makefile:") and "cannot enable FRED" in str(err.value)
    else:
        result, text = extracted(name, "pv32-n", fred=True)
        assert "delivery fred" in text and "xen/arch/x86/traps-setup.c:26" in text


def test_two_runs_give_identical_bytes():
    assert extracted("xen-RELEASE-4.20.0")[1] == extracted("xen-RELEASE-4.20.0")[1]


# ---- no silent misread, on small trees (tests/fixtures/xen-trees and tests/test_extract.py's) ------

from xen_trees import TREES  # noqa: E402
from test_extract import FILES, tree as inline_tree  # noqa: E402


def copy(tmp_path: Path, base: str) -> Path:
    root = tmp_path / base
    shutil.copytree(TREES / base, root)
    return root


def run(root: Path, config: str = ".config") -> ex.Extraction:
    cfg, source = ex.configuration(root / config, None)
    return ex.extract(root, cfg, source)


def test_a_renamed_idt_array_still_reads(tmp_path):
    """4.20's idt_table renamed bsp_idt in traps.c and pv/traps.c (as master did): same gates."""
    root = copy(tmp_path, "old-layout")
    for rel in ("xen/arch/x86/traps.c", "xen/arch/x86/pv/traps.c"):
        p = root / rel
        p.write_text(p.read_text().replace("idt_table", "bsp_idt"))
    result = run(root)
    assert gate(result, 0x80) == (3, "interrupt", "int80") and gate(result, 0x82) == (1, "interrupt", "int82")


def test_a_gate_written_elsewhere_is_not_understood(tmp_path):
    root = copy(tmp_path, "old-layout")
    p = root / "xen/arch/x86/pv/traps.c"
    p.write_text(p.read_text().replace("idt_table + LEGACY_SYSCALL_VECTOR", "other_idt + LEGACY_SYSCALL_VECTOR"))
    with pytest.raises(InputError, match=r"pv/traps.c:35: error: not understood: a gate written into `other_idt"):
        run(root)


def test_a_conditional_gate_write_is_not_understood(tmp_path):
    root = copy(tmp_path, "old-layout")
    p = root / "xen/arch/x86/pv/traps.c"
    text = p.read_text().replace("    _set_gate(idt_table + LEGACY_SYSCALL_VECTOR",
                                 "    if ( opt_int80 )\n    _set_gate(idt_table + LEGACY_SYSCALL_VECTOR")
    p.write_text(text)
    with pytest.raises(InputError, match=r"not understood: this gate write runs under `if \( opt_int80 \)`"):
        run(root)


def test_an_unknown_handler_is_not_understood(tmp_path):
    root = copy(tmp_path, "new-layout")
    p = root / "xen/arch/x86/include/asm/gen-idt.h"
    p.write_text(p.read_text().replace("entry_int80,", "entry_legacy_syscall,"))
    with pytest.raises(InputError, match=r"gen-idt.h:80: error: not understood: vector 0x80's handler is "
                                         r"entry_legacy_syscall"):
        ex.spec_text(run(root), "t", __import__("pvsmt.lang.parse", fromlist=["SpecLoader"]).SpecLoader())


def test_gen_lines_are_placed_by_their_position(tmp_path):
    """Swap master gen-idt.h's 0x80 block (L79-83) with the 0x81 line (L85): slot 0x80 is then the
    autogen 0x81 stub (DPL0) and slot 0x81 entry_int80 (DPL3), whatever their vector arguments say."""
    root = copy(tmp_path, "new-layout")
    p = root / "xen/arch/x86/include/asm/gen-idt.h"
    lines = p.read_text().splitlines()
    assert lines[84].startswith("GEN(0x81") and lines[78] == "#ifdef CONFIG_PV", lines[78:85]
    lines[78:85] = [lines[84]] + lines[78:84]
    p.write_text("\n".join(lines) + "\n")
    result = run(root)
    assert gate(result, 0x80) == (0, "interrupt", "irq") and gate(result, 0x81) == (3, "interrupt", "int80")
    assert result.gates[0x81].where.line == 81
    assert any("is IDT slot 0x81: the position places it" in n for n in result.notes)


def with_setup(tmp_path, old: str, new: str, **more) -> Path:
    text = FILES["xen/arch/x86/traps-setup.c"]
    assert old in text
    return inline_tree(tmp_path, **{"xen/arch/x86/traps-setup.c": text.replace(old, new), **more})


def test_a_guard_that_is_always_false_is_read(tmp_path):
    root = with_setup(tmp_path, "if ( cpu_has_sep )", "if ( 0 && cpu_has_sep )")
    result = run_inline(root)
    assert result.sysenter_cs["intel"][0] == "null" and result.sysenter_cs["amd"][0] == "null"


def test_an_unknown_guard_is_not_understood(tmp_path):
    root = with_setup(tmp_path, "if ( cpu_has_sep )", "if ( opt_sysenter && cpu_has_sep )")
    with pytest.raises(InputError, match=r"traps-setup.c:5: error: not understood: the SYSENTER_CS write runs "
                                         r"under `opt_sysenter && cpu_has_sep`"):
        run_inline(root)


def test_a_later_efer_write_clearing_sce_is_read(tmp_path):
    more = {"xen/arch/x86/cpu/common.c": "void cpu_init(void)\n{\n    write_efer(read_efer() & ~EFER_SCE);\n}\n"}
    result = run_inline(inline_tree(tmp_path, **more))
    assert result.efer_sce[0] is False and result.efer_sce[1].line == 3


def test_an_efer_write_of_unknown_value_is_not_understood(tmp_path):
    more = {"xen/arch/x86/cpu/common.c": "void cpu_init(void)\n{\n    write_efer(saved_efer);\n}\n"}
    with pytest.raises(InputError, match=r"common.c:3: error: not understood: EFER written with `saved_efer`"):
        run_inline(inline_tree(tmp_path, **more))


def run_inline(root: Path) -> ex.Extraction:
    return ex.extract(root, dict(ex.VARIANTS["pv"]), "variant pv")
