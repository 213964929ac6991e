"""Progress on a terminal (issue 14): only on a terminal's stderr, erased when done, never in a report."""

from __future__ import annotations

import io

import pytest

from pvsmt.progress import Progress
from pvsmt.analysis.cache import Tee

pytestmark = pytest.mark.fast


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_counts_on_a_terminal_and_erases_itself():
    term = Terminal()
    with Progress("pvsmt prove", 3, stream=term, delay=0) as p:
        p.now("a against xen")
        p.step()
    out = term.getvalue()
    assert "pvsmt prove: 0 of 3, a against xen" in out and "pvsmt prove: 1 of 3" in out
    assert out.endswith("\r\x1b[K")


def test_no_progress_when_not_a_terminal_or_quick():
    pipe = io.StringIO()
    with Progress("pvsmt prove", 3, stream=pipe, delay=0) as p:
        p.step("x")
    assert pipe.getvalue() == ""
    term = Terminal()
    with Progress("pvsmt prove", 3, stream=term) as p:  # the default delay: a quick run says nothing
        p.step("x")
    assert term.getvalue() == ""


def test_progress_is_not_recorded_in_what_the_cache_replays():
    term = Terminal()
    tee = Tee(term)
    with Progress("pvsmt prove", 1, stream=tee, delay=0) as p:
        p.step("x")
    tee.write("note: something\n")
    assert tee.text == "note: something\n" and "1 of 1" in term.getvalue()


def test_stages_without_a_count_cleared_while_another_shows_its_own():
    """check-xen names its stage (no count); while prove or diff shows its own line it is cleared."""
    term = Terminal()
    with Progress("pvsmt check-xen", stream=term, delay=0) as p:
        p.now("reading xen")
        p.clear()
        assert term.getvalue().endswith("\r\x1b[K")
        p.now("comparing the functions")
    out = term.getvalue()
    assert "pvsmt check-xen: reading xen" in out and "pvsmt check-xen: comparing the functions" in out
    assert out.endswith("\r\x1b[K") and ": 0" not in out
