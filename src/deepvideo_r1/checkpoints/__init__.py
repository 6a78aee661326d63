"""Atomic, pickle-free checkpoints that resume a run exactly."""
