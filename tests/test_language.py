"""Reading specs and invariants: good files load with the right facts; bad input is an
InputError located at the right file and line, with a message that says what is wrong."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pvsmt.backends.concrete import ConcreteEnv, Config
from pvsmt.errors import InputError, Location
from pvsmt.lang.parse import SpecLoader, load_invariants
from pvsmt.model.vocab import Delivery, Entry, GateType, Guest, Insn, SysenterCS, Vendor

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"


def line_of(path: Path, pattern: str) -> int:
    """The 1-based line of `path` that matches `pattern` (a regular expression)."""
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if re.search(pattern, line):
            return n
    raise AssertionError(f"{path.name}: no line matches {pattern!r}")


def at(where, path: Path, line: int) -> bool:
    return (isinstance(where, Location) and Path(where.path).resolve() == path.resolve()
            and where.line == line)


def load_spec(path: Path):
    return SpecLoader().load(path)


def spec_error(tmp_path: Path, text: str, name: str = "s", **files) -> tuple[InputError, Path]:
    """Write specs/NAME.spec (and any other specs given), load it, return the error."""
    d = tmp_path / "specs"
    d.mkdir(exist_ok=True)
    for other, body in files.items():
        (d / f"{other.replace('_', '-')}.spec").write_text(body)
    path = d / f"{name}.spec"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        load_spec(path)
    return info.value, path


def inv_error(tmp_path: Path, text: str) -> tuple[InputError, Path]:
    path = tmp_path / "t.inv"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        load_invariants(path)
    return info.value, path


INV = """\
invariant a {{
  specs xen
  cite "reference 6"
  assume {assume}
  prove {prove}
}}
"""


# ---- the shipped specs ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def loader():
    return SpecLoader()


@pytest.mark.parametrize("name", ["xen", "bare-x86", "xen-pv-n"])
def test_shipped_spec_loads(loader, name):
    spec = loader.load(SPECS / f"{name}.spec")
    assert spec.name == name and spec.title
    assert spec.delivery is Delivery.IDT
    for facts in spec.facts.values():
        for f in facts:
            assert f.where.line > 0 and Path(f.where.path).suffix == ".spec"


def test_xen_spec_guests_and_idt(loader):
    xen = loader.load(SPECS / "xen.spec")
    assert set(xen.guests) == {Guest.PV64, Guest.PV32} and xen.has_guests
    # gen-idt.h: DPL3 for 3, 4 and 0x80, DPL1 for 0x82 (PV32), DPL0 for every other vector.
    dpl = {v: xen.fixed(f"idt.{v:#04x}.dpl") for v in range(256)}
    assert (dpl[3], dpl[4], dpl[0x80], dpl[0x82]) == (3, 3, 3, 1)
    assert {v for v, d in dpl.items() if d != 0} == {3, 4, 0x80, 0x82}
    assert all(xen.fixed(f"idt.{v:#04x}.present") is True for v in range(256))
    assert all(xen.fixed(f"idt.{v:#04x}.type") == GateType.INTERRUPT for v in range(256))
    entry = {v: xen.fixed(f"idt.{v:#04x}.entry") for v in range(256)}
    assert entry[0x80] == Entry.INT80 and entry[0x82] == Entry.INT82
    assert {entry[v] for v in range(0x20)} == {Entry.EXCEPTION}
    assert {entry[v] for v in range(0x20, 0x100) if v not in (0x80, 0x82)} == {Entry.IRQ}
    assert xen.fixed("efer.sce") is True and xen.fixed("gate_audit") is True
    # SYSENTER_CS depends on the vendor: two conditional facts, no fixed value.
    assert xen.fixed("sysenter_cs") is None
    by_vendor = {}
    for f in xen.facts["sysenter_cs"]:
        for vendor in Vendor:
            if f.when.eval(ConcreteEnv(Config({"vendor": vendor}))):
                by_vendor[vendor] = f.values
    assert by_vendor == {Vendor.INTEL: (SysenterCS.NONNULL,), Vendor.AMD: (SysenterCS.NULL,)}
    # Facts keep their source line and citation.
    fact = xen.facts["idt.0x80.dpl"][0]
    assert fact.where.line == line_of(SPECS / "xen.spec", r"^idt 0x80\b") and fact.cite


def test_bare_x86_leaves_the_idt_free(loader):
    bare = loader.load(SPECS / "bare-x86.spec")
    assert not bare.has_guests and bare.guests == ()
    assert bare.fixed("gate_audit") is False
    assert all(bare.fixed(f"idt.{v:#04x}.{f}") is None for v in (0, 3, 0x80, 0xff) for f in ("dpl", "present"))
    assert bare.defaults["idt.0x03.dpl"][-1].values == (3,)  # a default only: for explain


def test_xen_pv_n_extends_xen(loader):
    pvn = loader.load(SPECS / "xen-pv-n.spec")
    assert pvn.parents == ("pv-guest-defaults", "xen")  # xen.spec extends the shared defaults
    assert not pvn.has_guests
    assert pvn.delivery is Delivery.IDT  # inherited
    assert (pvn.fixed("idt.0x80.dpl"), pvn.fixed("idt.0x80.entry")) == (0, Entry.IRQ)
    assert (pvn.fixed("idt.0x82.dpl"), pvn.fixed("idt.0x82.entry")) == (0, Entry.IRQ)
    assert pvn.fixed("efer.sce") is False
    assert pvn.fixed("sysenter_cs") == SysenterCS.NULL
    assert len(pvn.facts["sysenter_cs"]) == 1  # the unconditional fact replaced both conditional ones
    # Inherited facts keep the parent's location; overridden ones point at the child.
    inherited = pvn.facts["idt.0x03.dpl"][0]
    assert inherited.values == (3,) and at(inherited.where, SPECS / "xen.spec",
                                            line_of(SPECS / "xen.spec", r"^idt 0x03 dpl=3"))
    assert at(pvn.facts["idt.0x80.dpl"][0].where, SPECS / "xen-pv-n.spec",
              line_of(SPECS / "xen-pv-n.spec", r"^idt 0x80\b"))
    assert pvn.defaults["vendor"][-1].values == (Vendor.INTEL,)
    # The parent loaded through the child is not changed by it.
    assert loader.load(SPECS / "xen.spec").fixed("idt.0x80.dpl") == 3


def test_extends_in_a_temporary_directory(tmp_path):
    d = tmp_path / "specs"
    d.mkdir()
    (d / "base.spec").write_text('spec base\nset vendor = intel, amd\nset efer.sce = 1\nidt 0x00..0xff dpl=0\n')
    (d / "child.spec").write_text('spec child "t"\nextends base\nset efer.sce = 0\nidt 0x21 dpl=3\n')
    loader = SpecLoader()
    child = loader.load(d / "child.spec")
    assert child.parents == ("base",)
    assert child.fixed("efer.sce") is False and child.fixed("idt.0x21.dpl") == 3
    assert child.fixed("idt.0x20.dpl") == 0 and child.facts["vendor"][0].values == (Vendor.INTEL, Vendor.AMD)
    assert loader.load(d / "base.spec").fixed("efer.sce") is True
    assert loader.load(d / "child.spec") is child  # cached


def test_good_invariant_loads_every_field(tmp_path):
    path = tmp_path / "good.inv"
    path.write_text("""\
# a comment
invariant first {
  description "one" "two"
  specs xen, bare-x86
  cite "reference 6 row 13"
  cite "traps.c L1441-1452"
  assume insn == int_n and vector in {0x21, 0x30..0x40} and not debugger
  assume tt[vector].dpl >= 1
  prove hw.event == idt => hw.error_code == vector * 8 + 2
  expect refuted
  witness guest_mode == user
}

invariant second {
  cite "x"
  prove gate.ec == gate.sel - gate.rpl
}
""")
    first, second = load_invariants(path)
    assert first.name == "first" and first.where == Location(str(path), 2, 1)
    assert first.description == "one two"
    assert [n for n, _ in first.specs] == ["xen", "bare-x86"] and first.specs[1][1].line == 4
    assert first.cites == ["reference 6 row 13", "traps.c L1441-1452"]
    assert len(first.assumes) == 2 and first.expect == "refuted" and first.witness is not None
    assert first.guest_level  # reads tt[...] and guest_mode
    assert second.specs == [] and not second.guest_level and second.expect is None
    # The expressions evaluate: INT $0x21 from CPL3 under xen's IDT is #GP(0x10a).
    env = ConcreteEnv(Config({"insn": Insn.INT_N, "vector": 0x21, "debugger": False, "tt.0x21.dpl": 1}))
    assert all(a.eval(env) for a in first.assumes)


def test_idt_ec_function_parses(tmp_path):
    path = tmp_path / "ec.inv"
    path.write_text(INV.format(assume="insn == int_n", prove="hw.error_code == idt_ec(vector)"))
    (inv,) = load_invariants(path)
    env = ConcreteEnv(Config({"vector": 0x21}))
    assert inv.prove.eval(_WithOutcome(env, error_code=0x10a))


class _WithOutcome:
    def __init__(self, env, **fields):
        self.ops, self.env, self.fields = env.ops, env, fields

    def knob(self, name):
        return self.env.knob(name)

    def table(self, *args):
        return self.env.table(*args)

    def outcome(self, layer, field):
        return self.fields[field]


# ---- bad specs --------------------------------------------------------------------------------

def test_spec_syntax_error(tmp_path):
    err, path = spec_error(tmp_path, "spec s\nset vendor = intel\nset guest = = pv64\n")
    assert at(err.where, path, 3) and "unexpected '='" in err.message
    assert str(err).startswith(f"{err.where.path}:3:")


def test_spec_unexpected_character(tmp_path):
    err, path = spec_error(tmp_path, "spec s\n\nset vendor = intel\n  @\n")
    assert at(err.where, path, 4) and "unexpected character '@'" in err.message


def test_spec_unknown_knob_suggests(tmp_path):
    err, path = spec_error(tmp_path, "spec s\nset vendor = intel\n\nset efer.sec = 1\n")
    assert at(err.where, path, 4)
    assert "unknown knob 'efer.sec'" in err.message and "did you mean 'efer.sce'?" in err.message


def test_spec_unknown_name_in_condition_suggests(tmp_path):
    err, path = spec_error(tmp_path, "spec s\nset sysenter_cs = null\n  when vendr == amd\n")
    assert at(err.where, path, 3) and "did you mean 'vendor'?" in err.message


def test_spec_unknown_enum_value(tmp_path):
    err, path = spec_error(tmp_path, "spec s\n# vendors\nset vendor = intle\n")
    assert at(err.where, path, 3) and "bad value 'intle' for vendor" in err.message and "intel|amd" in err.message


def test_spec_unknown_enum_value_in_table(tmp_path):
    err, path = spec_error(tmp_path, "spec s\nidt 0x80 entry=int81\n")
    assert at(err.where, path, 2) and "int81" in err.message


@pytest.mark.parametrize("stmt", ["idt 0x100 dpl=0", "tt 256 present=1", "idt 0x00..0x100 present=1",
                                  "default tt 0x00..0x300 present=0"])
def test_spec_vector_over_255(tmp_path, stmt):
    err, path = spec_error(tmp_path, f"spec s\nset vendor = intel\n{stmt}\n")
    assert at(err.where, path, 3) and "over 255" in err.message


@pytest.mark.parametrize("stmt,what", [("idt 0x10 dpl=4", "4"), ("tt 3 dpl=7", "7"),
                                       ("set gate.dpl = 4", "4"), ("set cpl = 0..5", "5")])
def test_spec_dpl_over_3(tmp_path, stmt, what):
    err, path = spec_error(tmp_path, f"spec s\n\n\n{stmt}\n")
    assert at(err.where, path, 4) and f"bad value '{what}'" in err.message and "0..3" in err.message


def test_spec_field_that_does_not_exist(tmp_path):
    err, path = spec_error(tmp_path, "spec s\ntt 3 type=trap\n")
    assert at(err.where, path, 2) and "tt has no field 'type'" in err.message


def test_spec_table_entry_written_as_a_knob(tmp_path):
    err, path = spec_error(tmp_path, "spec s\nset idt.x = 1\n")
    assert at(err.where, path, 2) and "write table facts as 'idt VECTORS field=value'" in err.message


def test_spec_wrong_type_in_condition(tmp_path):
    err, path = spec_error(tmp_path, "spec s\nset efer.sce = 1 when insn == 3\n")
    assert at(err.where, path, 2) and "cannot compare" in err.message


def test_spec_outcome_in_condition(tmp_path):
    err, path = spec_error(tmp_path, "spec s\nset efer.sce = 1 when hw.event == idt\n")
    assert at(err.where, path, 2) and "'hw.event' is an outcome" in err.message


def test_spec_name_need_not_match_file(tmp_path):
    """`pvsmt extract TREE > x.spec` names its spec xen-extracted: the file still loads."""
    path = tmp_path / "mine.spec"
    path.write_text("# comment\nspec xen\n")
    assert SpecLoader().load(path).name == "xen"


def test_spec_extends_a_shipped_spec_from_anywhere(tmp_path):
    path = tmp_path / "proposal.spec"
    path.write_text('spec proposal\nextends xen\nidt 0x21 dpl=3\n    cite "a proposal"\n')
    spec = SpecLoader().load(path)
    assert spec.parents[-1] == "xen" and spec.fixed("idt.0x21.dpl") == 3 and spec.fixed("idt.0x03.dpl") == 3


def test_spec_extends_missing(tmp_path):
    err, path = spec_error(tmp_path, "spec s\nextends nowhere\n")
    assert at(err.where, path, 2) and "no spec 'nowhere'" in err.message


def test_spec_extends_must_come_first(tmp_path):
    err, path = spec_error(tmp_path, "spec s\nset vendor = intel\nextends base\n", base="spec base\n")
    assert at(err.where, path, 3) and "'extends' must be the first statement" in err.message


def test_spec_extends_cycle_is_detected(tmp_path):
    err, _ = spec_error(tmp_path, "spec a\nextends b\n", name="a", b="spec b\n\nextends a\n")
    assert "cycle" in err.message and "a -> b -> a" in err.message
    err, _ = spec_error(tmp_path, "spec self\nextends self\n", name="self")
    assert "self -> self" in err.message


def test_spec_extends_cycle_is_located_at_the_extends_line(tmp_path):
    err, _ = spec_error(tmp_path, "spec a\nextends b\n", name="a", b="spec b\n\nextends a\n")
    assert at(err.where, tmp_path / "specs" / "b.spec", 3)


def test_spec_delivery_statement_is_a_fact(tmp_path):
    path = tmp_path / "s.spec"
    path.write_text('spec s\ndelivery fred cite "traps-setup.c"\n')
    spec = load_spec(path)
    assert spec.delivery is Delivery.FRED and spec.fixed("delivery") is Delivery.FRED
    assert spec.facts["delivery"][0].cite == ("traps-setup.c",)


def test_spec_unknown_delivery_is_located(tmp_path):
    err, path = spec_error(tmp_path, "spec s\ndelivery apic\n")
    assert at(err.where, path, 2) and "unknown delivery 'apic'" in err.message


def test_spec_missing_file(tmp_path):
    path = tmp_path / "specs" / "absent.spec"
    with pytest.raises(InputError) as info:
        load_spec(path)
    assert info.value.where == str(path) and "no such file" in info.value.message


# ---- bad invariants -----------------------------------------------------------------------------

def test_invariant_syntax_error(tmp_path):
    err, path = inv_error(tmp_path, INV.format(assume="insn == int3", prove="hw.event == idt and"))
    assert at(err.where, path, 6) and "unexpected '}'" in err.message


def test_invariant_unexpected_end_of_file(tmp_path):
    err, path = inv_error(tmp_path, "invariant a {\n  cite \"x\"\n  prove hw.event == idt\n")
    assert "unexpected end of file" in err.message and "'}'" in err.message
    assert Path(err.where.path) == path


def test_invariant_unknown_knob_suggests(tmp_path):
    err, path = inv_error(tmp_path, INV.format(assume="vendr == intel", prove="hw.vector == 3"))
    assert at(err.where, path, 4) and "unknown name 'vendr'" in err.message and "did you mean 'vendor'?" in err.message


def test_invariant_unknown_outcome_field_suggests(tmp_path):
    err, path = inv_error(tmp_path, INV.format(assume="insn == int3", prove="guest.evnt == exception"))
    assert at(err.where, path, 5) and "did you mean 'guest.event'?" in err.message


def test_invariant_unknown_enum_value(tmp_path):
    err, path = inv_error(tmp_path, INV.format(assume="insn == int4", prove="hw.vector == 4"))
    assert at(err.where, path, 4) and "'int4' is not a value of" in err.message


@pytest.mark.parametrize("assume,prove,line,message", [
    ("insn == 3", "hw.vector == 3", 4, "cannot compare"),
    ("insn == int3", "cb.syscall + 1 == 2", 5, "expected a number, found a condition"),
    ("insn == int3", "vector", 5, "expected a condition"),
    ("insn == int3", "hw.event < idt", 5, "'<' needs numbers"),
    ("insn == int3", "guest.callback == 1", 5, "cannot compare"),
    ("insn == int3", "hw.vector == syscall", 5, "unknown name 'syscall'"),
])
def test_invariant_wrong_type(tmp_path, assume, prove, line, message):
    err, path = inv_error(tmp_path, INV.format(assume=assume, prove=prove))
    assert at(err.where, path, line) and message in err.message


def test_invariant_missing_prove(tmp_path):
    err, path = inv_error(tmp_path, "\ninvariant nothing {\n  specs xen\n  cite \"x\"\n  assume insn == int3\n}\n")
    assert at(err.where, path, 2) and "'nothing' has no 'prove' clause" in err.message


def test_invariant_two_prove_clauses(tmp_path):
    err, path = inv_error(tmp_path, INV.format(assume="insn == int3", prove="hw.vector == 3\n  prove hw.vector == 4"))
    assert at(err.where, path, 6) and "two 'prove' clauses" in err.message


def test_invariant_missing_cite(tmp_path):
    err, path = inv_error(tmp_path, "invariant a {\n  specs xen\n  prove hw.vector == 3\n}\n")
    assert at(err.where, path, 1) and "cites no source" in err.message


def test_invariant_duplicate_name(tmp_path):
    one = INV.format(assume="insn == int3", prove="hw.vector == 3")
    err, path = inv_error(tmp_path, one + "\n" + one)
    assert at(err.where, path, 8) and "'a' is already defined at" in err.message and f"{path}:1" in err.message


def test_invariant_bad_expect_and_lonely_witness(tmp_path):
    err, path = inv_error(tmp_path, INV.format(assume="insn == int3", prove="hw.vector == 3\n  expect maybe"))
    assert at(err.where, path, 6) and "expect must be one of proved, refuted, vacuous" in err.message
    err, path = inv_error(tmp_path, INV.format(assume="insn == int3", prove="hw.vector == 3\n  witness cpl == 3"))
    assert at(err.where, path, 6) and "'witness' needs 'expect refuted'" in err.message


def test_invariant_missing_file(tmp_path):
    with pytest.raises(InputError) as info:
        load_invariants(tmp_path / "absent.inv")
    assert info.value.where == str(tmp_path / "absent.inv") and "no such file" in info.value.message


# ---- the tree the parser shapes (parse.TreeShaper) is Lark's own, positions included ------------------

EXPRESSIONS = ["(a or b) and c", "((a or b)) and (c)", "not (x == 1)", "f((a) and b)", "idt[(3)].dpl == 0",
               "x in {1, (2)..(3)}", "x not in {(1)}", "(1 + 2) * 3 << (4)", "(a => (b))", "(none)", "(idt)"]


def lark_tree_with_positions():
    """Lark's tree builder with propagate_positions: what pvsmt used before TreeShaper."""
    from lark import Lark
    from pvsmt.lang import parse
    grammar = (Path(parse.__file__).parent / "grammar.lark").read_text()
    return Lark(grammar, start=["start_spec", "start_inv", "start_expr", "start_expect"], parser="lalr",
                propagate_positions=True, maybe_placeholders=False)


def same_tree(ours, lark_own) -> None:
    from lark import Token
    assert type(ours) is type(lark_own) and ours == lark_own
    if isinstance(ours, Token):
        assert (ours.type, ours.start_pos, ours.end_pos) == (lark_own.type, lark_own.start_pos, lark_own.end_pos)
        return
    if not lark_own.meta.empty:
        assert (ours.meta.start_pos, ours.meta.end_pos) == (lark_own.meta.start_pos, lark_own.meta.end_pos), ours.data
    for a, b in zip(ours.children, lark_own.children):
        same_tree(a, b)


def test_shaped_trees_are_larks_own():
    from pvsmt.lang import parse
    reference = lark_tree_with_positions()
    kept = {s.name for r in reference.rules for s in r.expansion if s.is_term and not s.filter_out}
    assert kept == parse.NAMED_TERMINALS  # grammar.lark's named terminals, and no others
    start = {".spec": "start_spec", ".inv": "start_inv", ".expect": "start_expect"}
    files = [p for d in ("specs", "proofs", "diffs", "tests") for p in sorted((ROOT / d).rglob("*"))
             if p.suffix in start]
    assert len(files) > 20
    texts = [(p.read_text(), start[p.suffix]) for p in files] + [(e, "start_expr") for e in EXPRESSIONS]
    for text, rule in texts:
        same_tree(parse.parser().parse(text, start=rule), reference.parse(text, start=rule))


@pytest.mark.parametrize("text", ['"plain"', '""', '"a # b ☃\x0c"', '"esc\\"aped\\n"', '"bad \\N escape"', '"nul\0"',
                                  '"cr\r"'])
def test_string_reads_as_literal_eval(text):
    """Builder.string's shortcut for a string with nothing escaped reads what literal_eval reads, and
    refuses what it refuses, with the same message."""
    import ast
    from lark import Token
    from pvsmt.lang.parse import Builder
    token = Token("STRING", text, 0, 1, 1)
    try:
        expected = ast.literal_eval(text)
    except (SyntaxError, ValueError) as exc:
        with pytest.raises(InputError) as info:
            Builder("f.inv", text).string(token)
        assert info.value.message == f"bad string {text}: {exc.msg if hasattr(exc, 'msg') else exc}"
        return
    assert Builder("f.inv", text).string(token) == expected
