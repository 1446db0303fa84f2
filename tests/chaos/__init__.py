"""Chaos run: real processes, a simulated week, seeded faults, an independent oracle (see README.md)."""
