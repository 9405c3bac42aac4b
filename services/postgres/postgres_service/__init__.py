"""agent-system's PostgreSQL: a launcher for local clusters (tests and process mode)."""
