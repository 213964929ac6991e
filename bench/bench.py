#!/usr/bin/env python3
"""Benchmark: `pvsmt prove proofs/` against two baselines measured in the same run.

  1. bare start-up: a fresh `python -c "import z3"` (the floor of any run);
  2. exhaustive concrete enumeration of the finite hardware-level space under
     Xen's IDT (every vendor, code mode, CPL, EFER.SCE, SYSENTER_CS, instruction,
     INT vector, prefix form, OF, BOUND range and call-gate shape), run through
     the concrete evaluator, which is what a brute-force checker would do for
     one fixed IDT and no guest layer at all.

It also times `pvsmt prove tests/fixtures/false --max 3` (16 refutations, each
with up to three minimal, explained counterexamples), `pvsmt diff xen xen-fred
--expect diffs/xen--xen-fred.expect` and `pvsmt diff pv-traps-doc xen` (complete
class enumerations), reported as ratios to the prove run.

Prints medians of --repeat runs (wall-clock) and the ratios.  Ratios, not
seconds, are what to compare across machines.

By default it prints issue 14's table instead: every target as a ratio to
`python -c "import z3"` (start-up, prove cold and warm through the result cache,
the false fixtures, both diffs, check-xen with --xen-tree), medians of >= 5
interleaved rounds, with pvsmt's bytecode compiled first (into a temporary directory, as an
install compiles it), not by every run; --legacy gives the report above.

Usage: python bench/bench.py [--repeat N] [--no-diff] [--xen-tree DIR] [--legacy]
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pvsmt.backends.concrete import Config, broken_axioms, evaluate  # noqa: E402
from pvsmt.backends.configure import resolve  # noqa: E402
from pvsmt.lang.parse import SpecLoader  # noqa: E402
from pvsmt.model.vocab import CodeMode, GateTable, Insn, Prefix, SysenterCS, Vendor  # noqa: E402


def wall(cmd: list[str], repeat: int) -> tuple[float, int]:
    times, code = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        code = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
        times.append(time.perf_counter() - start)
    return statistics.median(times), code


def variants(insn: Insn, mode: CodeMode):
    """The instruction-specific knobs: every value that matters to the CPU."""
    if insn == Insn.INT_N:
        prefixes = list(Prefix) if mode == CodeMode.LONG64 else [Prefix.NONE, Prefix.LEGACY]
        for vector, prefix in itertools.product(range(256), prefixes):
            yield {"vector": vector, "prefix": prefix}
    elif insn == Insn.INTO:
        yield from ({"of": of} for of in (False, True))
    elif insn == Insn.BOUND:
        yield from ({"bound.in_range": r} for r in (False, True))
    elif insn == Insn.CALLGATE:
        for t, i, rpl, lim, p, d in itertools.product(GateTable, (0, 1), range(4), (False, True),
                                                      (False, True), range(4)):
            yield {"gate.table": t, "gate.index": i, "gate.rpl": rpl, "gate.in_limit": lim,
                   "gate.present": p, "gate.dpl": d}
    else:
        yield {}


def enumerate_hardware() -> int:
    """Evaluate every hardware-level configuration under Xen's IDT; returns the count."""
    spec = SpecLoader().load(ROOT / "specs" / "xen.spec")
    base = dict(resolve(spec, {}).config.values)
    count = 0
    for vendor, mode, cpl, sce, cs, insn in itertools.product(
            Vendor, CodeMode, range(4), (False, True), SysenterCS, Insn):
        fixed = {"vendor": vendor, "mode": mode, "cpl": cpl, "efer.sce": sce, "sysenter_cs": cs, "insn": insn,
                 "prefix": Prefix.NONE}
        for extra in variants(insn, mode):
            config = Config({**base, **fixed, **extra})
            if broken_axioms(config, guests=False):
                continue
            evaluate(config, guests=False)
            count += 1
    return count


def ratios(repeat: int, xen_tree: str | None, diffs: bool) -> int:
    """Every target of issue 14 as a ratio to `python -c "import z3"`, the runs of all commands
    interleaved (round by round, so a change in the machine's load moves them all), each ratio
    the median of the rounds' ratios."""
    py = [sys.executable]
    pvsmt = py + ["-m", "pvsmt"]
    cache = tempfile.mkdtemp(prefix="pvsmt-bench-cache-")
    # Python's bytecode cached, as after an install (z3's is): in a temporary tree, so that
    # PYTHONDONTWRITEBYTECODE (set where the source tree must stay clean) does not make every
    # run compile pvsmt again; the result cache in a temporary directory of its own.
    env = {**os.environ, "XDG_CACHE_HOME": cache, "PYTHONPYCACHEPREFIX": os.path.join(cache, "pycache")}
    for name in ("PYTHONDONTWRITEBYTECODE", "PVSMT_NO_CACHE"):
        env.pop(name, None)
    rows = [("pvsmt --help", pvsmt + ["--help"], 2),
            ("prove proofs/, cold", pvsmt + ["prove", "proofs", "--no-cache"], 8),
            ("prove proofs/, warm (cached)", pvsmt + ["prove", "proofs"], 2),
            ("prove false fixtures --max 3", pvsmt + ["prove", "tests/fixtures/false", "--max", "3", "--no-cache"], 20)]
    if diffs:
        rows += [("diff xen xen-fred --expect", pvsmt + ["diff", "xen", "xen-fred", "--expect", "xen--xen-fred"], 8),
                 ("diff pv-traps-doc xen", pvsmt + ["diff", "pv-traps-doc", "xen"], 40)]
    if xen_tree:
        rows.append((f"check-xen {xen_tree}", pvsmt + ["check-xen", xen_tree], 15))
    subprocess.run(py + ["-m", "compileall", "-q", str(ROOT / "pvsmt")], env=env, check=True)  # the bytecode
    subprocess.run(pvsmt + ["prove", "proofs"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)  # the result cache
    base, times = [], {name: [] for name, _, _ in rows}
    for _ in range(repeat):
        base.append(_time(py + ["-c", "import z3"], env))
        for name, cmd, _ in rows:
            times[name].append(_time(cmd, env))
    floor = statistics.median(base)
    unit = 'python -c "import z3"'
    print(f"{unit:34} {floor:8.3f} s   (the unit: every ratio is to this, same rounds)")
    print(f"{'command':34} {'median s':>8}   {'ratio':>6}   {'target':>6}")
    for name, _, target in rows:
        ratio = statistics.median(t / b for t, b in zip(times[name], base))
        print(f"{name:34} {statistics.median(times[name]):8.3f}   {ratio:6.1f}x  {'<=' + str(target) + 'x':>6}  "
              f"{'met' if ratio <= target else 'NOT met'}")
    print(f"(median of {repeat} interleaved rounds)")
    return 0


def _time(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5, help="runs per measurement (median is reported)")
    ap.add_argument("--proofs", default="proofs", help="the invariants to prove")
    ap.add_argument("--no-diff", action="store_true", help="skip the pvsmt diff measurements")
    ap.add_argument("--xen-tree", metavar="DIR", help="also time `pvsmt check-xen DIR` (a correct tree)")
    ap.add_argument("--legacy", action="store_true",
                    help="the older report: prove against the concrete enumeration, diffs as ratios to prove")
    args = ap.parse_args()
    if not args.legacy:
        return ratios(max(args.repeat, 5), args.xen_tree, not args.no_diff)


    startup, _ = wall([sys.executable, "-c", "import z3"], args.repeat)
    prove, code = wall([sys.executable, "-m", "pvsmt", "prove", args.proofs], args.repeat)
    start = time.perf_counter()
    count = enumerate_hardware()
    brute = time.perf_counter() - start

    print(f"python + import z3           {startup:8.3f} s")
    print(f"pvsmt prove {args.proofs:<16} {prove:8.3f} s   (exit {code})")
    print(f"  solver work beyond start-up{prove - startup:8.3f} s")
    print(f"concrete enumeration         {brute:8.3f} s   ({count} hardware-level configurations, one IDT)")
    print(f"ratio prove / start-up       {prove / startup:8.2f}")
    print(f"ratio prove / enumeration    {prove / brute:8.2f}")
    false, false_code = wall([sys.executable, "-m", "pvsmt", "prove", "tests/fixtures/false", "--max", "3"],
                             max(1, args.repeat // 2))
    print(f"pvsmt prove false fixtures   {false:8.3f} s   (exit {false_code}, --max 3: explained counterexamples)")
    print(f"ratio false fixtures / prove {false / prove:8.2f}")
    if not args.no_diff:
        pvsmt = [sys.executable, "-m", "pvsmt", "diff"]
        fred, code = wall(pvsmt + ["specs/xen.spec", "specs/xen-fred.spec", "--expect",
                                   "diffs/xen--xen-fred.expect"], args.repeat)
        doc, doc_code = wall(pvsmt + ["specs/pv-traps-doc.spec", "specs/xen.spec"], max(1, args.repeat // 3))
        print(f"pvsmt diff xen xen-fred      {fred:8.3f} s   (exit {code}, with --expect)")
        print(f"pvsmt diff pv-traps-doc xen  {doc:8.3f} s   (exit {doc_code}, every class and silence)")
        print(f"ratio diff idt/fred / prove  {fred / prove:8.2f}")
        print(f"ratio diff doc/xen / prove   {doc / prove:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
