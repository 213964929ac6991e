"""Every test module has a tier (tests/conftest.py), so `-m fast`, `-m solver` and `-m e2e`
together run the whole suite."""

from __future__ import annotations

from pathlib import Path

from conftest import MODULE_TIER, TIERS

HERE = Path(__file__).resolve().parent


def test_every_test_module_has_a_tier():
    modules = {p.stem for p in HERE.glob("test_*.py")}
    assert sorted(modules - set(MODULE_TIER)) == [], "add these to MODULE_TIER in tests/conftest.py"
    assert sorted(set(MODULE_TIER) - modules) == [], "MODULE_TIER names modules that do not exist"
    assert set(MODULE_TIER.values()) <= set(TIERS)


def test_every_collected_test_is_in_exactly_one_tier(request):
    for item in request.session.items:
        tiers = [t for t in TIERS if item.get_closest_marker(t)]
        assert len(tiers) == 1, (item.nodeid, tiers)
