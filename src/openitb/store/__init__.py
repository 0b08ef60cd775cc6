"""Persistence: SQLAlchemy 2 mappings, engine set-up and Alembic migrations (shipped inside)."""
