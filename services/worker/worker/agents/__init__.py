"""The three agents: price -> indicator (three EMAs) -> bang. Each brings one shard up to date."""
