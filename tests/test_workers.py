"""cli.workers: jobs in forked processes, their messages relayed in order, failures brought back."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from pvsmt.cli import workers
from pvsmt.errors import InputError, Location

pytestmark = pytest.mark.skipif(not workers.forking(), reason="no fork on this platform: the jobs run in-process")


def collect(jobs):
    seen = []
    values = workers.run(jobs, lambda k, kind, payload: seen.append((k, kind, payload)))
    return values, seen


def counting(n):
    def job(channel):
        for i in range(n):
            channel.send("tick", i)
        return os.getpid(), n
    return job


def test_values_come_back_in_job_order_each_from_a_process_of_its_own():
    values, seen = collect([counting(3), counting(5)])
    assert [n for _, n in values] == [3, 5]
    pids = {pid for pid, _ in values}
    assert len(pids) == 2 and os.getpid() not in pids
    for k, n in ((0, 3), (1, 5)):  # each job's messages, in the order sent
        assert [p for j, kind, p in seen if j == k and kind == "tick"] == list(range(n))


def test_without_fork_the_same_values_and_messages_in_process(monkeypatch):
    _, forked = collect([counting(3), counting(2)])
    monkeypatch.setattr(workers, "forking", lambda: False)
    values, here = collect([counting(3), counting(2)])
    assert {pid for pid, _ in values} == {os.getpid()}
    assert here == sorted(forked, key=lambda m: m[0])  # job by job, each in its order


def test_what_a_worker_writes_on_stderr_reaches_the_parent():
    def job(channel):
        print("a note from the worker", file=sys.stderr)
        return 1
    _, seen = collect([job, counting(1)])
    assert "".join(p for _, kind, p in seen if kind == "stderr") == "a note from the worker\n"


def test_a_jobs_error_is_raised_in_the_parent_as_it_was():
    def bad(channel):
        raise InputError(Location("specs/x.spec", 3, 7), "no such knob")
    with pytest.raises(InputError) as info:
        collect([counting(1), bad])
    assert str(info.value) == "specs/x.spec:3:7: error: no such knob"


def test_an_error_that_cannot_be_pickled_comes_back_with_its_traceback():
    class Local(Exception):  # a local class: pickle cannot name it
        pass

    def bad(channel):
        raise Local("deep inside")
    with pytest.raises(workers.WorkerError, match=r"(?s)a worker process failed:.*Local: deep inside"):
        collect([bad, counting(1)])


def test_a_worker_that_dies_is_an_error_not_a_hang():
    def dies(channel):
        os.kill(os.getpid(), signal.SIGKILL)
    with pytest.raises(workers.WorkerError, match=r"ended without an answer \(signal 9\)"):
        collect([counting(1), dies])


def test_a_handler_that_raises_stops_the_run_and_kills_the_workers():
    def slow(channel):
        channel.send("pid", os.getpid())
        time.sleep(60)

    pids = []

    def on_message(k, kind, payload):
        pids.append(payload)
        if len(pids) == 2:
            raise KeyboardInterrupt

    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        workers.run([slow, slow], on_message)
    assert time.monotonic() - start < 30
    for pid in pids:  # killed and reaped: no such process any more
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_prove_job_run_here_leaves_the_garbage_collector_as_it_was(monkeypatch):
    """cli.prove's job collects garbage less often while it works; run in the command's own
    process (no fork, one run) it must not leave that setting behind."""
    import gc
    from pvsmt.cli import prove
    during = []
    monkeypatch.setattr(prove, "_work", lambda *args: during.append(gc.get_threshold()) or [])
    before = gc.get_threshold()
    assert before[0] != 100_000
    assert prove._run_bucket([], [], None, {}, None) == []
    assert during[0][0] == 100_000 and gc.get_threshold() == before
