"""Simulation adapters: scenarios and fleet studies over the pure pump and patient cores."""
