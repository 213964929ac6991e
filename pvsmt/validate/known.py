"""Known divergences: where an emulator and the manuals disagree, read from a TOML file.

Each `[[divergence]]` entry names the emulator, the versions (prefixes of the
version string the emulator reports) and vendors it applies to, the cases it
covers (`when`: a pvsmt condition over the case's knobs and the model's
prediction `hw.*`), and what the emulator does instead (`observed`: fields of
the observation, each a value or a pvsmt expression over the same names), with
what the SDM/APM say and the sources.  The manuals decide: an entry records an
emulator's error, never a change to the model.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..backends.concrete import ConcreteEnv
from ..errors import InputError, Location
from ..lang.expr import Expr
from ..lang.parse import parse_condition, parse_value, read
from ..model.outcome import HwOutcome
from ..model.vocab import NONE, Callback, GateType, GuestEvent, HwEvent, Kind, Msr, Rip
from .plan import as_observed

FIELDS = {"id", "emulator", "versions", "vendors", "when", "observed", "emulator_does", "manuals_say", "cite"}
OBSERVED = {"event": HwEvent, "vector": None, "error_code": None, "kind": Kind, "msr": Msr, "gate_type": GateType}
#: What the PV test guest observes, for entries of `emulator = "xen"` (a Xen build that is not
#: what its release's spec says): a field of the guest outcome, or `masked` (0|1).
GUEST_OBSERVED = {"event": GuestEvent, "vector": None, "error_code": None, "callback": Callback, "rip": Rip,
                  "masked": None}
EMULATORS = ("qemu", "bochs", "xen")
VENDORS = ("intel", "amd")


@dataclass(frozen=True)
class Divergence:
    id: str
    where: Location
    emulator: str
    versions: tuple[str, ...]
    vendors: tuple[str, ...]
    when: Expr
    observed: dict = field(default_factory=dict)  # field -> label (str) or Expr
    emulator_does: str = ""
    manuals_say: str = ""
    cite: tuple[str, ...] = ()

    def applies(self, emulator: str, version: str, vendor: str) -> bool:
        return (emulator == self.emulator and vendor in self.vendors
                and any(version.startswith(v) for v in self.versions))

    def explains(self, config, evaluation, seen: tuple) -> bool:
        """Whether the case is one it covers and the observation is what it says the emulator does."""
        env = ConcreteEnv(config, evaluation)
        if not self.when.eval(env):
            return False
        return as_observed(self.emulated(evaluation.hw, env)) == seen

    def emulated(self, hw: HwOutcome, env: ConcreteEnv) -> HwOutcome:
        """The CPU's event as the emulator raises it: the prediction with `observed` put in."""
        values = {"event": hw.event, "vector": hw.vector, "error_code": hw.error_code, "kind": hw.kind,
                  "msr": hw.msr, "gate_type": hw.gate_type, "source": hw.source}
        for name, value in self.observed.items():
            values[name] = value.eval(env) if isinstance(value, Expr) else value
        return HwOutcome(**values)


def load(path: Path) -> list[Divergence]:
    text = read(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(str(path), f"not valid TOML: {exc}") from None
    unknown = set(data) - {"divergence"}
    if unknown:
        raise InputError(str(path), f"unknown table(s) {', '.join(sorted(unknown))}: expected [[divergence]]")
    out, seen = [], set()
    for i, entry in enumerate(data.get("divergence", []), 1):
        d = _entry(path, text, i, entry)
        if d.id in seen:
            raise InputError(d.where, f"divergence '{d.id}' is listed twice")
        seen.add(d.id)
        out.append(d)
    return out


def _line_of(text: str, entry_id: str) -> int:
    for n, line in enumerate(text.splitlines(), 1):
        if line.replace(" ", "").startswith(f'id="{entry_id}"'):
            return n
    return 0


def _entry(path: Path, text: str, i: int, entry: dict) -> Divergence:
    ident = entry.get("id")
    where = Location(str(path), _line_of(text, ident) if isinstance(ident, str) else 0)
    label = f"divergence {ident!r}" if isinstance(ident, str) else f"divergence #{i}"

    def bad(message: str):
        raise InputError(where, f"{label}: {message}")
    extra = set(entry) - FIELDS
    if extra:
        bad(f"unknown field(s) {', '.join(sorted(extra))}; an entry has {', '.join(sorted(FIELDS))}")
    for name in ("id", "emulator", "when", "emulator_does", "manuals_say"):
        if not isinstance(entry.get(name), str) or not entry[name].strip():
            bad(f"'{name}' must be a non-empty string")
        if name == "emulator" and entry[name] not in EMULATORS:
            bad(f"emulator must be one of {', '.join(EMULATORS)}")
    versions, vendors = (_strings(entry, n, bad) for n in ("versions", "vendors"))
    cite = entry.get("cite")
    if not isinstance(cite, list) or not cite or not all(isinstance(c, str) and c.strip() for c in cite):
        bad("'cite' must name at least one source (the SDM/APM section, the emulator's bug)")
    if set(vendors) - set(VENDORS):
        bad(f"vendors must be a non-empty list of {', '.join(VENDORS)}")
    return Divergence(ident, where, entry["emulator"], tuple(versions), tuple(vendors),
                      _condition(entry["when"], where, bad),
                      _observed(entry.get("observed", {}), where, bad,
                                GUEST_OBSERVED if entry["emulator"] == "xen" else OBSERVED),
                      entry["emulator_does"].strip(), entry["manuals_say"].strip(), tuple(cite))


def _strings(entry: dict, name: str, bad) -> list[str]:
    value = entry.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value) or not value:
        bad(f"'{name}' must be a non-empty list of strings")
    return value


def _condition(text: str, where: Location, bad) -> Expr:
    try:
        return parse_condition(text, f"{where} (when)")
    except InputError as exc:
        bad(f"when: {exc.message}")


def _observed(table, where: Location, bad, fields: dict) -> dict:
    if not isinstance(table, dict) or not table:
        bad(f"'observed' must be a table of what the emulator gives instead ({', '.join(fields)})")
    out = {}
    for name, value in table.items():
        if name not in fields:
            bad(f"observed: unknown field '{name}'; expected one of {', '.join(fields)}")
        enum = fields[name]
        if enum is not None:
            try:
                out[name] = enum.parse(str(value))
            except ValueError as exc:
                bad(f"observed.{name}: {exc}")
        elif value == "none":
            out[name] = NONE
        elif isinstance(value, int):
            out[name] = value
        else:
            try:
                out[name] = parse_value(str(value), f"{where} (observed.{name})")
            except InputError as exc:
                bad(f"observed.{name}: {exc.message}")
    return out
