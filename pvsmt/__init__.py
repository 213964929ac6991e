"""pvsmt: a Z3 model checker for the x86 PV traps and entrypoints ABI of Xen."""

__version__ = "0.1.0"
