"""agentctl: agent-system's command line, a client of the orchestrator's HTTP API."""
