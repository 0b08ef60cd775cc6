"""Simulation: scenarios (the pump controller coupled to the virtual patient on a virtual clock)
and fleet studies (many pumps and patients at once)."""
