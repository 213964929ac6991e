"""Test tiers and the golden files' --overwrite.

Every test is in exactly one tier, a pytest marker given here by its module (a test may
name its own tier with @pytest.mark.e2e etc., which wins):

  fast    parsers, model cases, rules, the layout's import contract: no solver query
          beyond the cases' own, no subprocess but import-linter's.  Run it after every edit:  python -m pytest -m fast
  solver  Z3 proofs, counterexamples, diffs, reports, backend agreement, the instruction
          table's checks, the CLI in-process
  e2e     end to end: pvsmt as a subprocess, the non-editable install, emulators, real
          Xen trees, building and booting Xen

A module missing from TIERS is in the solver tier (tests/test_tiers.py fails until it is
listed).  PVSMT_NO_CACHE=1: no test reads the prove cache.  `--overwrite` (or PVSMT_OVERWRITE_GOLDEN=1) rewrites tests/golden/ from the
current output instead of comparing with it (tests/test_golden.py).
"""

from __future__ import annotations

import os

import pytest

# Every verdict is proved afresh: no test reads pvsmt's result cache (a test may patch the
# model in-process); tests/test_prove_cache.py drops this for its own runs.
os.environ.setdefault("PVSMT_NO_CACHE", "1")

TIERS = ("fast", "solver", "e2e")

#: The tier of each test module (its file name without .py).
MODULE_TIER = {
    "test_language": "fast",
    "test_cases": "fast",
    "test_rules": "fast",
    "test_instructions": "solver",
    "test_tiers": "fast",
    "test_expectation": "solver",
    "test_layout": "fast",
    "test_workers": "fast",
    "test_agreement": "solver",
    "test_agreement_props": "solver",
    "test_check_xen": "solver",
    "test_cli": "solver",
    "test_diff": "solver",
    "test_explained": "solver",
    "test_fixtures": "solver",
    "test_formats": "solver",
    "test_golden": "solver",
    "test_modes": "solver",
    "test_newcomer": "solver",
    "test_prover": "solver",
    "test_robustness": "solver",
    "test_soundness": "solver",
    "test_uncertain": "solver",
    "test_check_xen_boot": "e2e",
    "test_progress": "solver",
    "test_prove_cache": "e2e",
    "test_extract": "e2e",
    "test_extract_real": "e2e",
    "test_install": "e2e",
    "test_reproduce": "e2e",
    "test_validate": "e2e",
    "test_validate_xen": "e2e",
    "test_xenbuild": "e2e",
    "test_xenguest": "e2e",
}


def pytest_addoption(parser):
    parser.addoption("--overwrite", action="store_true", default=False,
                     help="rewrite the golden report files (tests/golden/) instead of comparing with them")


def tier_of(item) -> str:
    own = [m.name for m in item.iter_markers() if m.name in TIERS]
    if own:
        return own[0]
    return MODULE_TIER.get(item.module.__name__.rpartition(".")[2], "solver") if item.module else "solver"


def pytest_collection_modifyitems(config, items):
    for item in items:
        tier = tier_of(item)
        if not item.get_closest_marker(tier):
            item.add_marker(getattr(pytest.mark, tier))
