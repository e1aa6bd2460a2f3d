"""Alembic migrations of the coordinator's inventory (``nodeagentctl db upgrade``; ``nodeagent.fleet.schema``)."""
