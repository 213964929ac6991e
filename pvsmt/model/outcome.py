"""The two outcome records: what the CPU raises, and what the guest sees."""

from __future__ import annotations

from dataclasses import dataclass

from ..vocab import NONE, Callback, GateType, GuestEvent, HwEvent, Kind, Msr, Source


@dataclass(frozen=True)
class HwOutcome:
    """The event the CPU raises for one instruction (fields: vocab.HW_FIELDS)."""

    event: HwEvent
    vector: int = NONE
    error_code: int = NONE
    source: Source = Source.NONE
    kind: Kind = Kind.NONE
    msr: Msr = Msr.NONE
    gate_type: GateType = GateType.INTERRUPT


@dataclass(frozen=True)
class GuestOutcome:
    """What the PV guest sees (fields: vocab.GUEST_FIELDS)."""

    event: GuestEvent
    vector: int = NONE
    error_code: int = NONE
    type: Source = Source.NONE
    kind: Kind = Kind.NONE
    callback: Callback = Callback.NONE

