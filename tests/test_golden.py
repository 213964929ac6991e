"""Golden reports: `pvsmt prove` on each false fixture (tests/fixtures/false/*.inv), in every
format, compared byte for byte with tests/golden/<fixture>.<format>.

A change in a report is then a reviewed diff of these files.  They are rewritten only on
purpose, after reading what changed:

    python -m pytest tests/test_golden.py --overwrite      (or PVSMT_OVERWRITE_GOLDEN=1)

Each fixture is proved once, as `pvsmt prove FILE --format json` (from the repository root,
so paths read tests/fixtures/false/...); the other formats are rendered from that document,
which is all any renderer reads.  The versions of pvsmt and Z3 in the header are written as
`VERSION`, so a new Z3 alone changes nothing here (tests/test_formats.py checks the versions).
"""

from __future__ import annotations

import difflib
import functools
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from pvsmt.cli.main import main
from pvsmt.report.document import Report
from pvsmt.report.formats import FORMATS, render

ROOT = Path(__file__).resolve().parent.parent
FALSE = ROOT / "tests" / "fixtures" / "false"
GOLDEN = ROOT / "tests" / "golden"
FIXTURES = sorted(p.stem for p in FALSE.glob("*.inv"))
SUFFIX = {"text": "txt", "email": "email.txt", "markdown": "md", "json": "json", "junit": "junit.xml"}


def overwrite(config) -> bool:
    return config.getoption("--overwrite") or os.environ.get("PVSMT_OVERWRITE_GOLDEN") == "1"


@functools.cache
def document(name: str) -> Report:
    """The fixture's prove document, with the versions written as VERSION (each proved once per
    process, when a test first asks: two xdist workers rarely both need the same one)."""
    out_dir = Path(tempfile.mkdtemp(prefix="pvsmt-golden-"))
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        out = out_dir / f"{name}.json"
        code = main(["prove", f"tests/fixtures/false/{name}.inv", "--format", "json", "-o", str(out)])
        assert code == 0, f"{name}: every false fixture is refuted as it expects (exit 0), got {code}"
        doc = json.loads(out.read_text())
    finally:
        os.chdir(cwd)
        shutil.rmtree(out_dir, ignore_errors=True)
    doc["pvsmt"] = doc["z3"] = "VERSION"
    return Report.from_json(doc)


def golden_path(name: str, fmt: str) -> Path:
    return GOLDEN / f"{name}.{SUFFIX[fmt]}"


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", FIXTURES)
def test_report_matches_its_golden_file(request, name, fmt):
    text = render(document(name), fmt)
    path = golden_path(name, fmt)
    if overwrite(request.config):
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text)
        return
    assert path.is_file(), f"{path.relative_to(ROOT)} is missing: python -m pytest tests/test_golden.py --overwrite"
    want = path.read_text()
    if text != want:
        diff = "".join(difflib.unified_diff(want.splitlines(True), text.splitlines(True),
                                            f"{path.relative_to(ROOT)} (golden)", "this run"))
        pytest.fail(f"the report changed; if that is intended, review and rewrite with "
                    f"`python -m pytest tests/test_golden.py --overwrite`:\n{diff[:6000]}")


def test_every_golden_file_belongs_to_a_fixture_and_format():
    expected = {golden_path(n, f).name for n in FIXTURES for f in FORMATS}
    present = {p.name for p in GOLDEN.glob("*")} if GOLDEN.is_dir() else set()
    assert present - expected == set(), "stale golden files: remove them"
