"""Documents: the emergency wallet card and the therapy summary (PDF)."""
