"""Alembic migrations of chime's store; `chime db upgrade` applies them."""
