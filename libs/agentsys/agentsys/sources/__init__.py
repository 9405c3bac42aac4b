"""Price sources: synthetic (deterministic), CSV files, and the circuit breaker of live sources."""
