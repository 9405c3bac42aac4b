"""Benchmarks (``make bench``): figures, not tests. Results go to .bench/results.jsonl."""
