"""The model: the CPU (hardware.py) and Xen (xen_idt.py) as small pure functions.

The functions are written once against the `Ops` interface of rules.py and run
under two backends: pvsmt.concrete (plain Python values, records a trace) and
pvsmt.encode (Z3 terms).  Neither backend is imported here.
"""

from .axioms import AXIOMS, GUEST_AXIOMS
from .hardware import hardware
from .outcome import GuestOutcome, HwOutcome
from .xen_idt import xen_idt

__all__ = ["AXIOMS", "GUEST_AXIOMS", "GuestOutcome", "HwOutcome", "hardware", "xen_idt"]
