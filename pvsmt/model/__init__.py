"""The model: the CPU (hardware.py) and Xen (xen_idt.py, xen_fred.py; as documented: xen_doc.py)
as small pure functions.

The functions are written once against the `Ops` interface of rules.py and run
under two backends: pvsmt.backends.concrete (plain Python values, records a trace) and
pvsmt.backends.encode (Z3 terms).  Neither backend is imported here.
"""

from . import hardware as _hardware_rules
from . import xen as _xen_dispatch
from . import xen_doc as _doc_rules
from . import xen_fred as _fred_rules
from . import xen_idt as _xen_rules
from .axioms import AXIOMS, GUEST_AXIOMS
from .instructions import INSTRUCTIONS, cpu_event
from .outcome import GuestOutcome, HwOutcome
from .rules import Rule
from .xen import xen_event

#: Every rule of the model, by name.
RULES: dict[str, Rule] = {
    r.name: r for m in (_hardware_rules, _xen_rules, _fred_rules, _doc_rules, _xen_dispatch)
    for r in vars(m).values() if isinstance(r, Rule)
}

__all__ = ["AXIOMS", "GUEST_AXIOMS", "INSTRUCTIONS", "RULES", "GuestOutcome", "HwOutcome", "Rule", "cpu_event", "xen_event"]
