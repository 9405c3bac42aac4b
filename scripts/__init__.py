"""Repository scripts (not a library): ``python -m scripts.run.stack`` and friends."""
