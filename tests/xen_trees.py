"""The Xen source-tree fixtures: two base trees in tests/fixtures/xen-trees/ (the 4.21+ and the
4.20 layout, see its README) and the variants, each one edit of a base tree, made on demand.

An edit names a file, the lines it expects there (checked, so a changed base tree cannot make a
variant silently test something else) and what replaces them (None deletes the file).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

TREES = Path(__file__).resolve().parent / "fixtures" / "xen-trees"
GEN_IDT = "xen/arch/x86/include/asm/gen-idt.h"


@dataclass(frozen=True)
class Edit:
    path: str
    line: int                  # first line replaced (1-based)
    old: tuple[str, ...]       # the lines expected there
    new: tuple[str, ...] | None  # their replacement; None: delete the file


VARIANTS: dict[str, tuple[str, tuple[Edit, ...]]] = {
    # A DPL0 exception vector raised to DPL3: INT $0x0d would reach #GP's handler directly.
    "new-layout-dpl-raised": ("new-layout", (Edit(GEN_IDT, 51, ("GEN(0x0d, entry_GP,         DPL0, manual);",),
                                                  ("GEN(0x0d, entry_GP,         DPL3, manual);",)),)),
    # The CONFIG_PV 0x80 gate dropped: 0x80 is the DPL0 autogen stub even with PV.
    "new-layout-no-int80": ("new-layout", (Edit(GEN_IDT, 79, (
        "#ifdef CONFIG_PV", "GEN(0x80, entry_int80,      DPL3, manual);", "#else",
        "GEN(0x80, entry_0x80,       DPL0, autogen);", "#endif"), ("GEN(0x80, entry_0x80,       DPL0, autogen);",)),)),
    # Two IST numbers swapped: no effect on what a PV guest can reach.
    "new-layout-ist-change": ("new-layout", (Edit("xen/arch/x86/include/asm/idt.h", 13,
                                                  ("#define IST_NMI  2", "#define IST_DB   3"),
                                                  ("#define IST_NMI  3", "#define IST_DB   2")),)),
    # write_idte writes trap gates (type 0xF) instead of interrupt gates.
    "new-layout-trap-gates": ("new-layout", (Edit("xen/arch/x86/x86_64/entry.S", 54,
                                                  ("        .word 0x8e00 | (\\dpl << 13) /* Present, DPL, Interrupt Gate */",),
                                                  ("        .word 0x8f00 | (\\dpl << 13) /* Present, DPL, Trap Gate */",)),)),
    # The 4.20 layout with #GP's gate written by set_swint_gate (DPL3).
    "old-layout-dpl-raised": ("old-layout", (Edit("xen/arch/x86/traps.c", 89,
                                                  ("    set_intr_gate (X86_EXC_GP,  entry_GP);",),
                                                  ("    set_swint_gate(X86_EXC_GP,  entry_GP);",)),)),
    "broken-bad-gen-line": ("new-layout", (Edit(GEN_IDT, 51, ("GEN(0x0d, entry_GP,         DPL0, manual);",),
                                                ("GEN(0x0d, entry_GP,         DPL9, manual);",)),)),
    "broken-gen-missing-arg": ("new-layout", (Edit(GEN_IDT, 51, ("GEN(0x0d, entry_GP,         DPL0, manual);",),
                                                   ("GEN(0x0d, entry_GP,         manual);",)),)),
    "broken-missing-gen-idt": ("new-layout", (Edit(GEN_IDT, 0, (), None),)),
}


def tree(name: str, tmp_path: Path) -> Path:
    """A base tree as it is, or a variant made in tmp_path."""
    if name not in VARIANTS:
        return TREES / name
    base, edits = VARIANTS[name]
    root = tmp_path / name
    shutil.copytree(TREES / base, root)
    for e in edits:
        apply(root, e)
    return root


def apply(root: Path, e: Edit) -> None:
    path = root / e.path
    if e.new is None:
        path.unlink()
        return
    lines = path.read_text().splitlines()
    found = tuple(lines[e.line - 1:e.line - 1 + len(e.old)])
    assert found == e.old, f"{e.path}:{e.line}: expected {e.old}, found {found}: the base tree changed"
    lines[e.line - 1:e.line - 1 + len(e.old)] = e.new
    path.write_text("\n".join(lines) + "\n")
