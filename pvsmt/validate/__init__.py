"""Check pvsmt's hardware model against emulators: a bare-metal x86-64 test kernel run
under QEMU (TCG) and Bochs; see README.md and emulator.run_cases."""
