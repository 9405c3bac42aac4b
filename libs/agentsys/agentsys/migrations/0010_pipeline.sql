-- Rows a replay submission staged for its ingest job (the job gets ids, never payloads).
CREATE UNLOGGED TABLE staged_prices (
    task_id  text NOT NULL,
    symbol   text NOT NULL,
    ts       timestamptz NOT NULL,
    price    double precision NOT NULL
);
CREATE INDEX staged_prices_task ON staged_prices (task_id);

-- The first ts a composite task brought for a symbol: its bangs are those in [first_ts, target_ts].
ALTER TABLE task_targets ADD COLUMN first_ts timestamptz;
