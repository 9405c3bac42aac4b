"""agent-system's gateway (FastAPI): dashboard, WebSocket relay, API proxy."""
