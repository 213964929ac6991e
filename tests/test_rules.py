"""The rules themselves: named, cited, and unique."""

from collections import Counter

from pvsmt.model import RULES
from pvsmt.model import hardware as hw, xen as dispatch, xen_doc as doc, xen_fred as fred, xen_idt as xen
from pvsmt.model.rules import Rule


def test_rule_names_are_unique_across_layers():
    rules = {id(r): r for m in (hw, xen, fred, doc, dispatch) for r in vars(m).values() if isinstance(r, Rule)}
    names = [r.name for r in rules.values()]
    assert [n for n, c in Counter(names).items() if c > 1] == []
    assert len(RULES) == len(set(names))


def test_every_rule_cites_a_source_and_says_something():
    for rule in RULES.values():
        assert rule.cite.strip(), rule.name
        assert rule.says.strip(), rule.name
        assert rule.layer in ("hw", "xen", "doc"), rule.name


def test_uncertain_rules_are_the_ones_the_reference_marks():
    uncertain = {r.name for r in RULES.values() if r.uncertain}
    assert uncertain == {"hw.bound.long64", "xen.sysenter.pv64_kernel", "xen.emul_gate.not_present_dpl0",
                         "hw.fred.syscall.intel_compat", "hw.fred.sysenter", "hw.fred.sysenter.amd",
                         "xen.fred.sysenter.pv64_kernel"}
