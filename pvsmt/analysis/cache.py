"""The result cache of `pvsmt prove`: a run whose inputs have not changed prints the stored report.

An entry is found by a key over what the run is asked (the command line's options, the
working directory, the paths given and the .inv files found under them) and what
answers it (pvsmt's own source files, every file of the installed z3 package by name,
size and modification time).  The entry then lists every input file the run read,
each with a hash of its text: the invariant files, the specs and the specs they
extend, and the places a spec was looked for and not found (a spec created there
later would be read instead).  It is used only if every one still matches, so an
edited spec, invariant, parent spec or model source file is a miss.

It stores the report's exact bytes, the exit status and what the run wrote to
stderr, and only for runs that are the same on every run: no --timings, and no
`unknown` or `error` verdict (an `unknown` may come from the wall-clock --timeout).
Entries live in $XDG_CACHE_HOME/pvsmt (default ~/.cache/pvsmt), at most MAX_ENTRIES,
the least recently used removed first; `--no-cache` (or PVSMT_NO_CACHE=1) neither reads nor
writes them.
Nothing here imports Z3 or the parser: a hit costs the start-up of Python and a few
file reads.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from importlib.util import find_spec
from pathlib import Path

FORMAT = "pvsmt-prove-cache/1"
MAX_ENTRIES = 64
PACKAGE = Path(__file__).resolve().parents[1]   # pvsmt/


def disabled() -> bool:
    """PVSMT_NO_CACHE=1 turns the cache off, as --no-cache does (the test suite sets it: a test
    that patches the model in-process must not be answered from a run of the unpatched one)."""
    return os.environ.get("PVSMT_NO_CACHE", "") not in ("", "0")


def directory() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pvsmt"


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _source() -> str:
    """pvsmt's source files (every one: the model, the encoding, the solver calls, the report)."""
    h = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*")):
        if path.suffix in (".py", ".lark", ".json") and "__pycache__" not in path.parts:
            h.update(str(path.relative_to(PACKAGE)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def _z3() -> list:
    """The installed z3 package's files, by name, size and modification time (its version, without
    importing it)."""
    spec = find_spec("z3")
    if spec is None or not spec.submodule_search_locations:
        return []
    out = []
    for root in spec.submodule_search_locations:
        for path in sorted(Path(root).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                st = path.stat()
                out.append([str(path), st.st_size, st.st_mtime_ns])
    return out


def key(args, files: list[Path]) -> str:
    """The entry's name: the question and the answering code (the input files' text is checked
    against the entry's list, see `lookup`)."""
    from .. import __version__
    asked = {
        "format": FORMAT, "pvsmt": __version__, "python": sys.version, "cwd": os.getcwd(),
        "paths": args.paths, "spec": args.spec, "settings": args.settings, "verbose": args.verbose,
        "report": args.format, "max": args.max, "unused_facts": args.unused_facts,
        "rlimit": args.rlimit, "timeout": args.timeout,
        "output": str(args.output) if args.output is not None else None,
        "files": [str(f.resolve()) for f in files], "source": _source(), "z3": _z3(),
    }
    return _digest(json.dumps(asked, sort_keys=True, default=str).encode())


def fingerprint(path: Path) -> str | None:
    try:
        return _digest(path.read_bytes())
    except FileNotFoundError:
        return None


def inputs(files: list[Path], loader, probed) -> dict[str, str | None]:
    """Every file the run read (its hash) or looked for and did not find (None)."""
    paths = [*files, *loader.cache, *probed]
    return {str(Path(p).resolve()): fingerprint(Path(p)) for p in paths}


def lookup(name: str) -> dict | None:
    path = directory() / f"{name}.json"
    try:
        entry = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or entry.get("format") != FORMAT:
        return None
    if any(fingerprint(Path(p)) != h for p, h in entry["inputs"].items()):
        return None
    try:
        os.utime(path)  # recently used
    except OSError:
        pass
    return entry


def store(name: str, entry: dict) -> None:
    """Write the entry (atomically; a cache that cannot be written is no error), then prune."""
    folder = directory()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{name}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps({"format": FORMAT, **entry}))
        os.replace(tmp, folder / f"{name}.json")
        entries = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in entries[MAX_ENTRIES:]:
            old.unlink(missing_ok=True)
    except OSError:
        pass


class Tee:
    """A text stream that passes writes through to `stream` and keeps a copy."""

    def __init__(self, stream):
        self.stream, self.parts = stream, []
        self.passthrough = getattr(stream, "passthrough", stream)  # where progress.Progress writes

    def write(self, text: str) -> int:
        self.parts.append(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    @property
    def text(self) -> str:
        return "".join(self.parts)
