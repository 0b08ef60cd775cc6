"""The implanted pump's controller ("firmware"): a pure, deterministic state machine."""
