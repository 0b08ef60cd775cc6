"""Scenarios: the pump controller coupled to the virtual patient on a virtual clock."""
