"""agent-system's Redis: the configuration we run it with, and a launcher for local servers."""
