"""Job functions, enqueued by dotted path (``worker.jobs.<module>.run``)."""
