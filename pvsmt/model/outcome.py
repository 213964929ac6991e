"""The two outcome records: what the CPU raises, and what the guest sees."""

from __future__ import annotations

from dataclasses import dataclass

from .vocab import GUEST_FIELDS, NONE, Callback, GateType, GuestEvent, HwEvent, Kind, MaskFlag, Msr, Rip, Source


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
    """What the PV guest sees (fields: vocab.GUEST_FIELDS).

    `unspecified` is a bit set over GUEST_FIELDS (bit i: the i-th field): the
    fields an account of the ABI leaves open (a document that is silent).  Xen's
    code specifies every field.
    """

    event: GuestEvent
    vector: int = NONE
    error_code: int = NONE
    type: Source = Source.NONE
    kind: Kind = Kind.NONE
    callback: Callback = Callback.NONE
    rip: Rip = Rip.NONE
    masked_by: MaskFlag = MaskFlag.NONE
    unspecified: int = 0


#: The bit of each guest field in GuestOutcome.unspecified.
UNSPECIFIED_BIT = {name: 1 << i for i, name in enumerate(GUEST_FIELDS)}
ALL_UNSPECIFIED = sum(UNSPECIFIED_BIT.values())


def unspecified(*names: str) -> int:
    """The `unspecified` bit set naming these guest fields."""
    return sum(UNSPECIFIED_BIT[n] for n in names)


def open_fields(record: GuestOutcome) -> list[str]:
    """The fields a concrete guest outcome leaves unspecified."""
    return [n for n, bit in UNSPECIFIED_BIT.items() if record.unspecified & bit]



def is_unspecified(ops, record, name: str):
    """Whether `record` leaves field `name` open (guest outcomes only)."""
    mask = getattr(record, "unspecified", 0)
    if isinstance(mask, int) and mask == 0:
        return False
    return ops.mod(ops.div(mask, UNSPECIFIED_BIT[name]), 2) == 1


def differs(ops, a, b, names):
    """Some field both records specify has different values in them."""
    tests = []
    for n in names:
        open_a, open_b = is_unspecified(ops, a, n), is_unspecified(ops, b, n)
        tests.append(ops.all(ops.not_(open_a), ops.not_(open_b), ops.not_(getattr(a, n) == getattr(b, n))))
    return ops.any(*tests)


def leaves_open(ops, a, b, names):
    """Some field is left open by either record."""
    return ops.any(*(ops.any(is_unspecified(ops, a, n), is_unspecified(ops, b, n)) for n in names))
