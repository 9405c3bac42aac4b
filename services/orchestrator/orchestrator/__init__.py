"""agent-system's orchestrator (FastAPI)."""
