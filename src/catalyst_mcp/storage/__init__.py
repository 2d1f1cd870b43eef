"""Persistent state: SQLAlchemy models, repositories and Alembic migrations."""
