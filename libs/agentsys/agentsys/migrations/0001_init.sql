-- The system of record. Hot tables (prices, indicators) carry no foreign keys: every
-- write is a bulk insert keyed by (symbol, ts), and a deleted symbol's rows go with it
-- explicitly (symbols.delete_symbols).

CREATE TABLE symbols (
    symbol      text PRIMARY KEY CHECK (symbol ~ '^[A-Z0-9][A-Z0-9._/-]{0,31}$'),
    shard       integer NOT NULL DEFAULT 0 CHECK (shard >= 0),
    ema_fast    integer NOT NULL DEFAULT 9 CHECK (ema_fast >= 1),
    ema_mid     integer NOT NULL DEFAULT 21,
    ema_slow    integer NOT NULL DEFAULT 55,
    source      text NOT NULL DEFAULT 'synthetic',
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (ema_fast < ema_mid AND ema_mid < ema_slow)
);
CREATE INDEX symbols_shard ON symbols (shard, symbol);

CREATE TABLE prices (
    symbol  text NOT NULL,
    ts      timestamptz NOT NULL,
    price   double precision NOT NULL CHECK (price > 0 AND price < 'Infinity'),
    PRIMARY KEY (symbol, ts)
);

CREATE TABLE indicators (
    symbol    text NOT NULL,
    ts        timestamptz NOT NULL,
    price     double precision NOT NULL,
    ema_fast  double precision,
    ema_mid   double precision,
    ema_slow  double precision,
    state     text CHECK (state IN ('BULL', 'BEAR', 'FLAT')),
    PRIMARY KEY (symbol, ts)
);

-- txid lets a reader resume after a cursor without missing rows that committed out of
-- id order (see the gateway's backfill).
CREATE TABLE bang_events (
    id          bigserial PRIMARY KEY,
    symbol      text NOT NULL,
    ts          timestamptz NOT NULL,
    from_state  text NOT NULL CHECK (from_state IN ('BULL', 'BEAR', 'FLAT')),
    to_state    text NOT NULL CHECK (to_state IN ('BULL', 'BEAR')),
    price       double precision NOT NULL,
    ema_fast    double precision NOT NULL,
    ema_mid     double precision NOT NULL,
    ema_slow    double precision NOT NULL,
    txid        xid8 NOT NULL DEFAULT pg_current_xact_id(),
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (symbol, ts)
);
CREATE INDEX bang_events_ts ON bang_events (ts DESC, id DESC);
CREATE INDEX bang_events_txid ON bang_events (txid, id);

-- Per agent, per symbol: how far it got, and what it needs to go on from there.
CREATE TABLE progress (
    agent     text NOT NULL CHECK (agent IN ('price', 'indicator', 'bang')),
    symbol    text NOT NULL,
    last_ts   timestamptz,
    n         bigint NOT NULL DEFAULT 0,
    seed_sum  double precision NOT NULL DEFAULT 0,
    ema_fast  double precision,
    ema_mid   double precision,
    ema_slow  double precision,
    state     text CHECK (state IN ('BULL', 'BEAR', 'FLAT')),
    PRIMARY KEY (agent, symbol)
);

CREATE TABLE task_runs (
    id           text PRIMARY KEY,
    type         text NOT NULL,
    params       jsonb NOT NULL DEFAULT '{}'::jsonb,
    priority     text NOT NULL DEFAULT 'normal' CHECK (priority IN ('high', 'normal', 'low')),
    state        text NOT NULL CHECK (state IN ('queued', 'scheduled', 'deferred', 'started',
                                                'finished', 'failed', 'canceled', 'stopped')),
    progress     double precision NOT NULL DEFAULT 0,
    result       jsonb,
    error        text,
    traceback    jsonb,
    attempts     integer NOT NULL DEFAULT 0,
    worker       text,
    queue        text,
    enqueued_at  timestamptz,
    started_at   timestamptz,
    ended_at     timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX task_runs_created ON task_runs (created_at DESC, id DESC);
CREATE INDEX task_runs_state ON task_runs (state, created_at DESC, id DESC);
CREATE INDEX task_runs_type ON task_runs (type, created_at DESC, id DESC);
CREATE INDEX task_runs_worker ON task_runs (worker, created_at DESC, id DESC);

-- What a composite task waits for: per symbol, the ts the bang agent must reach.
CREATE TABLE task_targets (
    task_id    text NOT NULL REFERENCES task_runs (id) ON DELETE CASCADE,
    symbol     text NOT NULL,
    target_ts  timestamptz NOT NULL,
    ticks      integer NOT NULL DEFAULT 0,
    done       boolean NOT NULL DEFAULT false,
    PRIMARY KEY (task_id, symbol)
);
CREATE INDEX task_targets_open ON task_targets (symbol, target_ts) WHERE NOT done;
