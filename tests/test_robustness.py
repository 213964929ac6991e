"""Property-based tests (hypothesis): any spec, invariant, --expect file or --set value gives a
result or a located InputError (exit status 2 at the command line), never another exception.

Inputs are drawn three ways: token soups from the languages' own words, real files with a
slice deleted, replaced or duplicated, and arbitrary text.  `derandomize` keeps CI runs
reproducible; the example counts keep the file under a minute.
"""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pvsmt.cli.main import main
from pvsmt.backends.configure import parse_setting, resolve
from pvsmt.errors import InputError
from pvsmt.lang.parse import SpecLoader, load_expected, load_invariants

ROOT = Path(__file__).resolve().parent.parent
SPEC_TEXT = (ROOT / "specs" / "xen.spec").read_text()
INV_TEXT = (ROOT / "proofs" / "int-n.inv").read_text()
EXPECT_TEXT = (ROOT / "diffs" / "xen--xen-fred.expect").read_text()
XEN = SpecLoader().load(ROOT / "specs" / "xen.spec")

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

WORDS = ["spec", "xen", "extends", "set", "default", "delivery", "idt", "tt", "cite", "uncertain", "when",
         "invariant", "difference", "description", "specs", "assume", "prove", "expect", "witness", "refuted",
         "and", "or", "not", "in", "=>", "==", "!=", "<", ">=", "=", "..", ",", ".", "{", "}", "(", ")", "[", "]",
         "+", "-", "*", "<<", "insn", "int_n", "vector", "0x80", "256", "3", "-1", "none", "guest", "pv64",
         "hw.event", "guest.event", "tt[vector].dpl", "idt_ec", "efer.sce", "sysenter_cs", "old.efer.sce",
         "present=1", "dpl=4", "type=trap", '"text"', '"unterminated', "#", "\n", "x" * 300, "\\", "\x00", "é"]


def token_soup():
    return st.lists(st.sampled_from(WORDS), max_size=40).map(" ".join)


def mutated(text: str):
    """The text with one slice deleted, replaced by a token soup, or repeated."""
    n = len(text)

    def apply(args):
        i, j, how, soup = args
        i, j = sorted((i % (n + 1), j % (n + 1)))
        if how == 0:
            return text[:i] + text[j:]
        if how == 1:
            return text[:i] + soup + text[j:]
        return text[:j] + text[i:j] + text[j:]
    return st.tuples(st.integers(0, n), st.integers(0, n), st.integers(0, 2), token_soup()).map(apply)


def any_text(base: str):
    return st.one_of(token_soup(), mutated(base), st.text(max_size=200))


def only_input_errors(load, text: str, path: Path):
    path.write_text(text, encoding="utf-8", errors="surrogatepass") if _encodable(text) else path.write_bytes(
        text.encode("utf-8", "replace"))
    try:
        load(path)
    except InputError as exc:
        assert str(exc.where).startswith(str(path)), exc  # located in the file read
        assert str(exc).count("error:") == 1


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


@SETTINGS
@given(text=any_text(SPEC_TEXT))
def test_any_spec_text_loads_or_gives_a_located_error(tmp_path_factory, text):
    d = tmp_path_factory.mktemp("spec")
    (d / "xen.spec").write_text(SPEC_TEXT)
    only_input_errors(lambda p: SpecLoader().load(p), text, d / "t.spec")


@SETTINGS
@given(text=any_text(INV_TEXT))
def test_any_invariant_text_loads_or_gives_a_located_error(tmp_path_factory, text):
    only_input_errors(load_invariants, text, tmp_path_factory.mktemp("inv") / "t.inv")


@SETTINGS
@given(text=any_text(EXPECT_TEXT))
def test_any_expect_text_loads_or_gives_a_located_error(tmp_path_factory, text):
    only_input_errors(load_expected, text, tmp_path_factory.mktemp("expect") / "t.expect")


NAMES = ["vendor", "guest", "insn", "vector", "cpl", "efer.sce", "sysenter_cs", "gate.index", "tt.0x80.dpl",
         "idt.3.present", "idt.0x100.dpl", "tt.N.dpl", "delivery", "abi", "prefix", "mode", "nosuch"]
VALUES = ["intel", "amd", "pv32", "int_n", "0x80", "256", "-1", "3", "0", "1", "nonnull", "fred", "doc", "rex",
          "compat", "", " ", "0x", "1e3", "none", "x" * 50]


@SETTINGS
@given(arg=st.one_of(st.tuples(st.sampled_from(NAMES), st.sampled_from(["=", "==", ":", ""]),
                               st.sampled_from(VALUES)).map("".join), st.text(max_size=40)))
def test_any_set_value_parses_or_gives_an_error_naming_it(arg):
    try:
        name, value = parse_setting(arg)
    except InputError as exc:
        assert str(exc).startswith(f"--set {arg}: error:")
        return
    try:
        resolve(XEN, {name: value})
    except InputError as exc:
        assert "error:" in str(exc)


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # capsys is read after every example
@given(args=st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(VALUES)).map(lambda t: f"{t[0]}={t[1]}"),
                     min_size=1, max_size=4))
def test_explain_with_any_settings_exits_0_or_2(capsys, args):
    argv = ["explain", "--spec", str(ROOT / "specs" / "xen.spec")]
    for a in args:
        argv += ["--set", a]
    code = main(argv)
    out, err = capsys.readouterr()
    assert code in (0, 2)
    if code == 2:
        assert re.match(r"^\S.*: error: ", err) and "Traceback" not in err
    else:
        assert out.startswith("spec: xen")


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=any_text(INV_TEXT))
def test_prove_on_any_invariant_file_exits_with_a_verdict_or_2(tmp_path_factory, capsys, text):
    d = tmp_path_factory.mktemp("cli")
    (d / "specs").mkdir()
    (d / "specs" / "xen.spec").write_text(SPEC_TEXT)
    f = d / "t.inv"
    f.write_text(text if _encodable(text) else text.encode("utf-8", "replace").decode())
    code = main(["prove", str(f), "--rlimit", "2000000"])
    out, err = capsys.readouterr()
    assert code in (0, 1, 2, 3, 4)
    if code == 2:
        assert "error:" in err and "Traceback" not in err
