"""The command line: prove, explain, diff, table, validate, extract and check-xen."""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import sys
import threading
from pathlib import Path

from .. import __version__
from ..errors import InputError, PvsmtError
from ..report.formats import FORMATS

EXIT_CODES = """\
exit status:
  0  every check proved (or got the verdict its `expect` names: `refuted (expected)`)
  1  some invariant refuted (a counterexample is shown), or an `expect` not met
  2  bad input or usage (file:line: error: message), or an internal error
  3  some check unknown (the solver gave up; its reason is shown), or a witness unchecked
  4  some check vacuous (its assumptions cannot hold)
  When verdicts differ, the worst decides, in the order 2, 1, 3, 4, 0.
"""

PROVE_HELP = """\
Prove invariants (.inv files) against specs (.spec files).

Each invariant names its specs (`specs xen`), found as specs/NAME.spec in the
invariant's directory or a parent of it; --spec checks every invariant against
the given spec files instead.  The table shows each (invariant, spec) pair:

  proved    the property holds in every configuration the assumptions allow
  refuted   a counterexample exists: shown below the table with its path
  vacuous   the assumptions cannot hold (never counted as proved)
  unknown   the solver gave up (its reason is shown)
  error     pvsmt failed on this pair (a bug: please report it)
"""

EXPLAIN_HELP = """\
Evaluate one concrete configuration and show what happens at the hardware and
the Xen level, with the path through the rules and their sources.

Names for --set (unset names take the spec's defaults; the output says which):
  vendor=intel|amd  guest=pv64|pv32  guest_mode=kernel|user  mode=long64|compat
  cpl=0..3  insn=INSNS
  vector=N (decimal or 0x hex)  prefix=none|legacy|rex  of=0|1  bound.in_range=0|1
  gate.table=gdt|ldt  gate.index=N  gate.rpl=0..3  gate.in_limit=0|1
  gate.present=0|1  gate.dpl=0..3
  tt.N.present=0|1  tt.N.dpl=0..3  cb.syscall=0|1  cb.syscall32=0|1  cb.sysenter=0|1
  debugger=0|1  sig_read_fault=0|1
Spec facts, overridable for what-if questions:
  idt.N.dpl=0..3  idt.N.present=0|1  idt.N.type=interrupt|trap
  idt.N.entry=exception|int80|int82|irq  efer.sce=0|1  sysenter_cs=0|nonnull
  gate_audit=0|1  delivery=idt|fred  abi=code|doc
"""


class ExplainHelp(argparse.RawDescriptionHelpFormatter):
    """Explain's help, with the instructions of the model's table (read only when the help is shown)."""

    def format_help(self) -> str:
        from ..model.instructions import BY_INSN
        return super().format_help().replace("insn=INSNS", "insn=" + "|".join(i.label for i in BY_INSN))


EXPLAIN_EXIT_CODES = """\
exit status:
  0  the configuration was evaluated (whatever happens in it)
  2  bad input or usage (file:line: error: message): an unknown name or value, settings
     that contradict each other or the spec, or an internal error
"""


DIFF_HELP = """\
Compute every configuration whose outcome differs between two specs, as a few
classes.  Each class prints as a `difference NAME { when CONDITION }` block with
the two outcomes, the fields that differ, the knobs left free (`any`) and a
witness: paste blocks into an --expect file to mark differences as intended.

The situation (instruction, guest kind and mode, vendor, trap table, callbacks)
is shared; each spec keeps its own system facts (write `old.NAME`/`new.NAME` for
a system knob in a condition).  Only configurations both specs allow are
compared.  "No differences" is printed only when Z3 proves there are none.
Fields a spec leaves unspecified (the documented ABI, where it is silent) are
never differences; such cases are listed separately.

exit status:
  0  the differences found are exactly those expected (none, without --expect)
  1  unexpected differences, or expected ones that did not appear
  2  bad input or usage (file:line: error: message), or an internal error
  3  incomplete: the solver gave up before proving the classes complete
"""


TABLE_HELP = """\
Print what the guest sees for each instruction, guest kind, guest mode and code
mode (rows), on Intel-like and AMD-like CPUs (columns), as a reStructuredText
table for docs/guest-guide.  Every name not in a row takes the spec's default
(the comment above the table lists those that mattered); --set changes them.

--check FILE.rst reads FILE.rst's table with the same header (with docutils)
and compares it with the model, row by row.

exit status:
  0  the table was printed, or --check found it agrees with the model
  1  --check found rows that disagree, or are missing or extra
  2  bad input or usage (file:line: error: message)
"""


EXTRACT_HELP = """\
Read the IDT (per-vector DPL, present bit, gate type) and the fast-system-call
MSR setup (EFER.SCE, MSR_SYSENTER_CS) from a Xen source tree and print a spec.
Both layouts are read: the build-time IDT of Xen 4.21+ (gen-idt.h and entry.S's
write_idte), and the runtime gate writes of 4.20 and earlier (traps.c, pv/traps.c).
The configuration comes from --config (a Kconfig .config) or --variant.
Files go through a C preprocessor with the configuration's CONFIG_* symbols, and
every fact cites the tree's file and line.  Whatever is missing or has an
unexpected shape is an error naming the file and line (exit 2).
"""

CHECK_XEN_HELP = """\
The command a Xen CI job runs: extract a spec from XEN_TREE (as pvsmt extract),
prove the invariants written for the reference spec against it, and diff it
against the reference (with --expect, the intended differences).  The reference
follows the tree: its release's spec (xen, xen-4.20, xen-4.17, xen-4.17.0),
xen-pv-n for CONFIG_PV=n, xen-fred with --fred on; --against chooses another.
A counterexample lists the spec facts on its path with the tree's file and line.

What the tree does not say is taken from the model: the code of the Xen functions
the model encodes (the #GP emulation, entry_int80, the callbacks, entry_from_pv,
...).  Their text is compared with the release the model describes; while one
differs, every guest-level proof is `unverified` (exit 3), naming the function
and its file:line.  --base OLD diffs OLD's spec against the tree's instead (what
the change changes for guests).  --boot builds the tree's Xen and runs the
real-Xen validation with the tree's spec as the prediction: unverified verdicts
become proved (every rule of the changed functions exercised, every case agrees)
or refuted (a case disagrees).

exit status: the worst of the invariants', the diff's and the boot's, in the order 2, 1, 3, 4, 0
  0  every invariant proved (or not applicable to the configuration) and the diff
     found only what was expected
  1  a refutation, an unexpected (or missing expected) difference, or a boot disagreement
  2  bad input: a malformed tree (file:line: error: message), spec or option; a failed build
  3  unverified (a modelled function's code differs), or the solver gave up
  4  an invariant is vacuous
"""

VALIDATE_HELP = """\
Boot pvsmt's bare-metal x86-64 test kernel (pvsmt/validate/kernel, built with the
machine's gcc and binutils) under QEMU (TCG) or Bochs, run some 1,600 cases per
vendor (every branch of the hardware model, and INT $N over all 256 vectors at
gate DPL 0 and 3 in both code modes), and compare what arrived first with the
model's hardware-level prediction.

A disagreement is a known divergence when an entry of the known-divergences file
explains it (the emulator is wrong there; the SDM/APM decide), uncertain when the
prediction rests on a rule marked UNCERTAIN, and unexplained otherwise.

With --xen XEN (a hypervisor binary: xen or xen.gz) or --xen-tree DIR (a Xen
source tree or .tar.xz archive, built with CONFIG_PV=y, CONFIG_PV32=y and cached),
boot that Xen under QEMU with pvsmt's PV test guest as dom0 (pvsmt/validate/xenguest),
run some 2,800 PV64 or 1,350 PV32 cases (every Xen rule a run can take, and INT $N
over all 256 vectors at vDPL 0 and 3 from kernel and user mode, unprefixed and
REX-prefixed), and compare what the guest saw with the model's guest-level
prediction under the release's spec: the one `pvsmt` ships for the version in Xen's
banner (specs/xen-4.17.spec for 4.17 and 4.18, xen-4.20 for 4.19.0-4.21.0, xen for
later; --spec to choose).  The prediction runs on the emulator's CPU: the model's
hardware layer with QEMU's known divergences (the --known file) applied.  Needs QEMU
10 or later (7.2 puts a wrong error code in the #GP that Xen decodes INT $N from).
Each --vendor (default: both) is one set of runs on QEMU's `-cpu max` with that
vendor's CPUID (Xen takes its AMD paths there: SYSCALL from compatibility mode
enters through CSTAR, SYSENTER is never set up), predicted for that vendor.

exit status:
  0  no unexplained disagreement, and every applicable listed divergence occurred
  1  an unexplained disagreement, a listed divergence that no longer occurs, or
     (--xen) a case the guest could not run
  2  bad input, or the emulator, Xen or the toolchain is missing or failed
"""


REPRODUCE_HELP = """\
Run one configuration of the model on a real Xen: map it to one case of the PV
test guest (pvsmt/validate/xenguest), boot XEN once under QEMU (TCG) with the guest
as dom0, and print the model's prediction for that Xen's release spec beside what
the guest observed, with the path and its sources and the Xen and QEMU versions.

The configuration is --set NAME=VALUE (the names of `pvsmt explain`; unset names
take the spec's defaults) or --from REPORT.json: a counterexample of `pvsmt prove
--format json`, the configuration of `pvsmt explain --json`, or a witness of `pvsmt
diff --json` (--index N picks the Nth, default 1).  The spec's own facts (IDT,
swint_emul, ...) are always the booted Xen's.  A configuration the guest cannot set
up (a call gate its GDT or LDT cannot hold, a debugger, a null trap-table entry with a
vDPL, FRED) is refused.
"""

REPRODUCE_EXIT_CODES = """\
exit status:
  0  Xen did what the model predicts
  1  Xen did something else (both are shown)
  2  bad input (a configuration the guest cannot set up, says why), or QEMU, Xen
     or the toolchain is missing or failed
"""


def build_parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="pvsmt", description="Model checker for Xen's x86 PV traps and entrypoints ABI.",
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    top.add_argument("--version", action=_VersionAction)
    sub = top.add_subparsers(dest="command", metavar="COMMAND")

    prove = sub.add_parser("prove", help="prove invariants against specs", description=PROVE_HELP,
                           epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    prove.add_argument("paths", nargs="*", metavar="PATH",
                       help=".inv files or directories of them (default: the shipped proofs/)")
    prove.add_argument("--spec", action="append", metavar="FILE|NAME",
                       help="check every invariant against this spec: a .spec file, or NAME (specs/NAME.spec "
                            "here, else the shipped spec NAME) (repeatable)")
    prove.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", dest="settings",
                       help="fix a knob or override a spec fact in every check (what-if)")
    prove.add_argument("-v", "--verbose", action="store_true",
                       help="show every knob of a counterexample and the rule names")
    prove.add_argument("--format", choices=FORMATS, default="text",
                       help="text (default, a terminal), email (72 columns, to quote in a review), markdown "
                            "(a merge request), json (docs/report-format.md), junit (JUnit XML for CI)")
    prove.add_argument("-o", "--output", type=Path, metavar="FILE",
                       help="write the report to FILE (stdout then gets the one-line summary)")
    prove.add_argument("--max", type=int, default=1, metavar="N",
                       help="up to N counterexamples per refuted check, each differing from the others "
                            "in a knob that matters (default 1)")
    prove.add_argument("--unused-facts", action="store_true",
                       help="list the spec facts that no verdict relied on")
    prove.add_argument("--timings", action="store_true",
                       help="add wall-clock times (the report is then no longer the same bytes on every run)")
    prove.add_argument("--no-cache", action="store_true",
                       help="neither use nor store a cached result (runs whose inputs have not changed are "
                            "answered from $XDG_CACHE_HOME/pvsmt, default ~/.cache/pvsmt)")
    prove.add_argument("--rlimit", type=int, default=50_000_000, metavar="N",
                       help="Z3 resource limit per query: a deterministic work budget (default 50000000; "
                            "0: none)")
    prove.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                       help="wall-clock limit per query, a safety net behind --rlimit (default 60; 0: none)")

    explain = sub.add_parser("explain", help="evaluate one concrete configuration", description=EXPLAIN_HELP,
                             epilog=EXPLAIN_EXIT_CODES, formatter_class=ExplainHelp)
    explain.add_argument("--spec", required=True, metavar="FILE|NAME",
                         help="the system: a .spec file, or NAME (specs/NAME.spec here, else the shipped spec NAME)")
    explain.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", dest="settings",
                         help="set a knob or override a spec fact (repeatable)")
    explain.add_argument("--json", action="store_true", help="print JSON instead of text")
    explain.add_argument("-v", "--verbose", action="store_true", help="also show rule names")

    diff = sub.add_parser("diff", help="every configuration whose outcome differs between two specs",
                          description=DIFF_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    diff.add_argument("old", metavar="OLD", help="the old spec: a .spec file, or NAME (specs/NAME.spec here, "
                                                 "else the shipped spec NAME)")
    diff.add_argument("new", metavar="NEW", help="the new spec: a .spec file, or NAME")
    diff.add_argument("--level", choices=("guest", "hardware"), default="guest",
                      help="compare what the guest sees (default) or what the CPU raises")
    diff.add_argument("--expect", metavar="FILE|NAME",
                      help="the intended differences: `difference NAME { when ... }` blocks (NAME: the shipped "
                           "diffs/NAME.expect, e.g. xen--xen-fred)")
    diff.add_argument("--json", action="store_true", help="print JSON instead of text")
    diff.add_argument("-v", "--verbose", action="store_true", help="show both paths of every class")
    diff.add_argument("--max-classes", type=int, default=200, metavar="N",
                      help="give up (exit 3) after N classes (default 200)")
    diff.add_argument("--rlimit", type=int, default=50_000_000, metavar="N",
                      help="Z3 resource limit per query (0: none)")
    diff.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                      help="wall-clock limit per query (0: none)")
    table = sub.add_parser("table", help="the behaviour matrix of a spec as a reStructuredText table",
                           description=TABLE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    table.add_argument("--spec", required=True, metavar="FILE|NAME",
                       help="the system: a .spec file, or NAME (specs/NAME.spec here, else the shipped spec NAME)")
    table.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", dest="settings",
                       help="fix a knob or override a spec fact for every cell (repeatable)")
    table.add_argument("--check", type=Path, metavar="FILE.rst",
                       help="verify the table in FILE.rst against the model instead of printing one")
    table.add_argument("-o", "--output", type=Path, metavar="FILE", help="write the table to FILE")

    ext = sub.add_parser("extract", help="read the IDT and MSR setup from a Xen source tree into a spec",
                         description=EXTRACT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    ext.add_argument("tree", metavar="XEN_TREE", type=Path, help="the root of a Xen source tree (holding xen/)")
    ext.add_argument("--config", type=Path, metavar="FILE",
                     help="a Kconfig .config giving CONFIG_PV and CONFIG_PV32")
    ext.add_argument("--variant", choices=("pv", "pv32-n", "pv-n"), default=None,
                     help="without a .config: pv (CONFIG_PV=y, CONFIG_PV32=y; the default), pv32-n or pv-n")
    ext.add_argument("--fred", choices=("on", "off"), default="off",
                     help="event delivery: off (the IDT, default) or on (FRED; the tree must support it)")
    ext.add_argument("--name", default=None,
                     help="the spec's name (default: the -o file's name without .spec, else xen-extracted)")
    ext.add_argument("-o", "--output", type=Path, metavar="FILE.spec", help="write the spec to FILE.spec")

    chk = sub.add_parser("check-xen", help="extract a Xen tree's spec, prove the invariants, diff it (for CI)",
                         description=CHECK_XEN_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    chk.add_argument("tree", metavar="XEN_TREE", type=Path, help="the root of a Xen source tree (holding xen/)")
    chk.add_argument("--config", type=Path, metavar="FILE", help="a Kconfig .config")
    chk.add_argument("--variant", choices=("pv", "pv32-n", "pv-n"), default=None,
                     help="without a .config: pv (the default), pv32-n or pv-n")
    chk.add_argument("--fred", choices=("on", "off"), default="off",
                     help="event delivery: off (the IDT, default) or on (FRED; the reference becomes xen-fred)")
    chk.add_argument("--against", default=None, metavar="FILE|NAME",
                     help="the reference spec (default: the tree's release model, e.g. xen or xen-4.20; "
                          "xen-pv-n for CONFIG_PV=n, xen-fred with --fred on)")
    chk.add_argument("--base", type=Path, metavar="OLD_TREE",
                     help="the tree the change applies to (a merge request's target): diff OLD's extracted spec "
                          "against the tree's and name the modelled functions the change edits")
    chk.add_argument("--boot", action="store_true",
                     help="also build the tree's Xen (about 5 minutes on 2 cores, cached) and run the real-Xen "
                          "validation with the tree's spec as the prediction: unverified becomes proved or refuted")
    chk.add_argument("--expect", type=Path, metavar="FILE", help="the intended differences (pvsmt diff --expect)")
    chk.add_argument("--proofs", action="append", metavar="PATH",
                     help="an .inv file or a directory of them (repeatable; default: the shipped proofs/)")
    chk.add_argument("--max", type=int, default=1, metavar="N", help="counterexamples per refuted check")
    chk.add_argument("--format", choices=("text", "json", "junit"), default="text",
                     help="text (default), json (schema pvsmt-check-xen/1) or junit (for GitLab's test report)")
    chk.add_argument("-o", "--output", type=Path, metavar="FILE", help="write the report to FILE")
    chk.add_argument("--timings", action="store_true", help="add wall-clock times")
    chk.add_argument("-v", "--verbose", action="store_true", help="show more detail")
    chk.add_argument("--rlimit", type=int, default=50_000_000, metavar="N", help="Z3 resource limit per query")
    chk.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS", help="wall-clock limit per query")

    val = sub.add_parser("validate", help="check the hardware model against QEMU or Bochs",
                         description=VALIDATE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = val.add_mutually_exclusive_group(required=True)
    what.add_argument("--emulator", choices=("qemu", "bochs"), help="check the hardware model on this emulator")
    what.add_argument("--xen", type=Path, metavar="XEN",
                      help="check the Xen model on this hypervisor binary (xen or xen.gz), under QEMU")
    what.add_argument("--xen-tree", type=Path, metavar="DIR",
                      help="build the hypervisor of this Xen source tree (or .tar.xz), then as --xen")
    val.add_argument("--guest", choices=("pv64", "pv32"), action="append",
                     help="--xen: the PV test guest's kind (repeatable; default: pv64, and pv32 where the "
                          "hypervisor has CONFIG_PV32)")
    val.add_argument("--spec", metavar="SPEC",
                     help="--xen: the spec to predict with (default: the shipped spec of the release in Xen's banner)")
    val.add_argument("--vendor", choices=("intel", "amd"), action="append",
                     help="the emulated CPU's vendor (repeatable; default: both)")
    val.add_argument("--known", type=Path, metavar="FILE",
                     help="the known-divergences file (default: the shipped emulators/known-divergences.toml)")
    val.add_argument("-v", "--verbose", action="store_true",
                     help="show the model's path for each disagreement, and every one on an UNCERTAIN path")

    rep = sub.add_parser("reproduce", help="run one configuration on a real Xen and compare with the model",
                         description=REPRODUCE_HELP, epilog=REPRODUCE_EXIT_CODES,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    src = rep.add_mutually_exclusive_group(required=True)
    src.add_argument("--set", action="append", metavar="NAME=VALUE", dest="settings",
                     help="set a knob, as for explain (repeatable)")
    src.add_argument("--from", type=Path, metavar="REPORT.json", dest="report",
                     help="a counterexample of prove --format json, explain --json or diff --json")
    rep.add_argument("--index", type=int, default=1, metavar="N", help="with --from: the Nth counterexample (default 1)")
    rep.add_argument("--xen", type=Path, required=True, metavar="XEN", help="the hypervisor: xen or xen.gz")
    rep.add_argument("--spec", metavar="FILE|NAME",
                     help="predict with this spec (default: the release spec of the version in Xen's banner)")
    rep.add_argument("--known", type=Path, metavar="FILE",
                     help="the known-divergences file (default: the shipped emulators/known-divergences.toml)")
    rep.add_argument("--format", choices=("text", "email"), default="text",
                     help="text (default), or email: a plain-text write-up, 72 columns, for a reply to a maintainer")
    return top


class _VersionAction(argparse.Action):
    """--version, which reads Z3's version only when asked (`pvsmt --help` does not import Z3)."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="show program's version number and exit")

    def __call__(self, parser, namespace, values, option_string=None):
        print(_version())
        parser.exit()


def _version() -> str:
    try:
        import z3
        return f"pvsmt {__version__} (z3 {z3.get_version_string()})"
    except ImportError:  # pragma: no cover
        return f"pvsmt {__version__}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if args.command in ("diff", "check-xen"):  # prove arms it when it solves (prove_run.prove)
            from ..interrupt import install
            install()
        return COMMANDS[args.command](args)
    except InputError as exc:
        print(exc, file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: the work is cancelled, one line, the shell's 128 + SIGINT
        return interrupted()
    except ctypes.ArgumentError as exc:
        # Ctrl-C while ctypes converted the arguments of a call into Z3: the KeyboardInterrupt
        # arrives wrapped in the conversion's error
        if isinstance(exc.__context__, KeyboardInterrupt):
            return interrupted()
        raise
    except BrokenPipeError:  # the reader went away (`| head`): say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except RecursionError:
        print("pvsmt: error: an expression is nested too deeply to read", file=sys.stderr)
        return 2
    except PvsmtError as exc:
        print(f"pvsmt: internal error: {exc}", file=sys.stderr)
        return 2


def interrupted() -> int:
    """Ctrl-C: one line, and the shell's 128 + SIGINT, without waiting for busy solver threads."""
    print("pvsmt: interrupted", file=sys.stderr)
    if any(t.is_alive() for t in threading.enumerate() if t is not threading.main_thread()):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    return 130


def settings(args) -> dict[str, object]:
    out: dict[str, object] = {}
    if not args.settings:
        return out
    from ..backends.configure import parse_setting
    for arg in args.settings:
        name, value = parse_setting(arg)
        if name in out and out[name] != value:
            raise InputError(f"--set {arg}", f"{name} is already set to another value")
        out[name] = value
    return out


def cmd_explain(args) -> int:
    from ..backends.concrete import evaluate
    from ..backends.configure import resolve
    from ..lang.parse import SpecLoader
    from ..report import wording as report
    spec = SpecLoader().load(spec_path(args.spec))
    resolved = resolve(spec, settings(args))
    from ..report.contrast import with_fred
    ev = with_fred(resolved.config, evaluate(resolved.config, guests=spec.has_guests), spec)
    if args.json:
        print(json.dumps(report.explain_json(spec, resolved, ev), indent=2))
    else:
        print(report.explain_text(spec, resolved, ev, args.verbose))
    return 0


def cmd_prove(args) -> int:
    from .prove import run
    if args.max < 1:
        raise InputError("--max", "expected a positive number")
    if args.rlimit < 0 or args.timeout < 0:
        raise InputError("--rlimit/--timeout", "expected a number >= 0 (0: no limit)")
    return run(args, settings(args))


def spec_path(arg: str) -> Path:
    """A spec argument: a path, or NAME: specs/NAME.spec here, else the shipped spec NAME."""
    from ..lang.shipped import spec_argument
    return spec_argument(arg)


def cmd_diff(args) -> int:
    from ..report import diff as diff_report
    from ..analysis.diff import Differ
    from ..lang.parse import SpecLoader, load_expected
    from ..lang.shipped import expect_argument
    from ..analysis.prove import Limits
    if args.max_classes < 1:
        raise InputError("--max-classes", "expected a positive number")
    loader = SpecLoader()
    old, new = loader.load(spec_path(args.old)), loader.load(spec_path(args.new))
    expected = load_expected(expect_argument(args.expect)) if args.expect else []
    limits = Limits(rlimit=max(args.rlimit, 0), timeout_ms=int(max(args.timeout, 0) * 1000))
    result = Differ(old, new, args.level, limits, args.max_classes).run(expected)
    if args.json:
        print(json.dumps(diff_report.diff_json(result), indent=2))
    else:
        print(diff_report.diff_text(result, args.verbose))
    return result.exit_code


def cmd_table(args) -> int:
    from ..report import table as matrix
    from ..lang.parse import SpecLoader, read
    from .prove import check_output
    check_output(args.output)
    spec = SpecLoader().load(spec_path(args.spec))
    built = matrix.build(spec, settings(args))
    if args.check is None:
        from .prove import emit
        emit(matrix.render(built), args.output)
        return 0
    mismatches = matrix.check(built, str(args.check), read(args.check))
    for m in mismatches:
        print(m)
    print(f"{args.check}: {len(mismatches)} row(s) disagree with spec {spec.name}" if mismatches
          else f"{args.check}: agrees with spec {spec.name} ({len(built.rows)} rows)")
    return 1 if mismatches else 0


def cmd_validate(args) -> int:
    if args.xen is not None or args.xen_tree is not None:
        return cmd_validate_xen(args)
    if args.guest or args.spec:
        raise InputError("--guest/--spec", "apply to --xen and --xen-tree only")
    from ..validate import run as val
    from ..validate.emulator import available
    divergences = val.load_divergences(args.known)
    val.check_plan()
    why = available(args.emulator)
    if why:
        raise InputError(f"--emulator {args.emulator}", why)
    try:
        runs = val.validate(args.emulator, args.vendor or ["intel", "amd"], divergences)
    except (RuntimeError, ValueError, OSError) as exc:  # the toolchain or the emulator failed
        raise InputError(f"--emulator {args.emulator}", f"{type(exc).__name__}: {exc}") from None
    sys.stdout.write(val.report(runs, divergences, args.verbose))
    return 0 if all(r.ok for r in runs) else 1


def cmd_validate_xen(args) -> int:
    from ..lang.parse import SpecLoader
    from ..validate import run as val
    from ..validate import xenvalidate as xv
    divergences = val.load_divergences(args.known)
    xen = args.xen
    if args.xen_tree is not None:
        from ..validate.xenbuild import build_xen
        xen = build_xen(args.xen_tree, progress=lambda line: print(line, file=sys.stderr))
    spec = SpecLoader().load(spec_path(args.spec)) if args.spec else None
    try:
        runs = xv.validate_all(xen, args.guest, spec, divergences, load=lambda name: SpecLoader().load(spec_path(name)),
                               vendors=args.vendor)
    except (RuntimeError, ValueError, OSError) as exc:  # the guest, QEMU or Xen failed
        raise InputError(f"--xen {xen}", f"{type(exc).__name__}: {exc}") from None
    sys.stdout.write("\n".join(xv.report(r, divergences, args.verbose) for r in runs))
    return 0 if all(r.ok for r in runs) else 1


def cmd_reproduce(args) -> int:
    from ..validate import reproduce as rp
    from ..lang.parse import SpecLoader
    from ..validate import run as val
    if args.report is not None:
        chosen, _ = rp.from_report(args.report, args.index)
    else:
        if args.index != 1:
            raise InputError("--index", "applies to --from only")
        chosen = rp.from_settings(args.settings)
    if not args.xen.is_file():
        raise InputError(f"--xen {args.xen}", "no such file")
    loader = SpecLoader()
    command = " ".join(["pvsmt reproduce", f"--xen {args.xen}"]
                       + ([f"--from {args.report}"] + ([f"--index {args.index}"] if args.index != 1 else [])
                          if args.report is not None else [f"--set {s}" for s in args.settings])
                       + ([f"--spec {args.spec}"] if args.spec else []))
    result = rp.run(args.xen, chosen, args.spec, lambda name: loader.load(spec_path(name)),
                    val.load_divergences(args.known), command)
    sys.stdout.write(rp.email(result) if args.format == "email" else rp.text(result))
    return 0 if result.agree else 1


def cmd_extract(args) -> int:
    from ..xen import extract as ex
    from ..lang.parse import SpecLoader
    from .prove import check_output
    check_output(args.output)
    config, source = ex.configuration(args.config, args.variant)
    if args.name is None:  # `extends`, `specs` and NAME arguments find a spec by its file name
        args.name = args.output.stem if args.output is not None else "xen-extracted"
    if not re.fullmatch(r"[a-z0-9][a-z0-9_\-]*", args.name):
        raise InputError(f"--name {args.name}", "a spec name is lower-case letters, digits, '_' and '-' "
                                               "(with -o and no --name, the file name without .spec)")
    result = ex.extract(args.tree, config, source, with_fred=args.fred == "on")
    from .prove import emit
    emit(ex.spec_text(result, args.name, SpecLoader()), args.output,
         f"{args.output}: spec {args.name}, {len(result.gates)} IDT vectors ({result.layout} layout)")
    return 0


def cmd_check_xen(args) -> int:
    from .check_xen import run
    return run(args)


COMMANDS = {"check-xen": cmd_check_xen, "extract": cmd_extract, "prove": cmd_prove, "explain": cmd_explain, "diff": cmd_diff, "table": cmd_table,
            "validate": cmd_validate, "reproduce": cmd_reproduce}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
