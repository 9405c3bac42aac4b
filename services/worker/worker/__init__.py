"""agent-system's workers: RQ jobs for the agents and the control queue."""
