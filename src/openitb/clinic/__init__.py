"""The clinic's service layer: use cases over a unit of work (no HTTP, no HTML)."""
