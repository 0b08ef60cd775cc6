"""The pump service: one pump controller behind the telemetry protocol (issue 4)."""
