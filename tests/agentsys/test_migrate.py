from __future__ import annotations

import subprocess
import uuid

import psycopg

from agentsys import migrate
from postgres_service import cluster
from tests.support.procs import VENV_BIN
from tests.support.servers import with_database

TABLES = {"symbols", "prices", "indicators", "bang_events", "progress", "task_runs", "task_targets"}


def _fresh(servers) -> tuple[str, str]:
    name = f"m_{uuid.uuid4().hex[:12]}"
    cluster.create_database(servers.pg_url, name)
    return name, with_database(servers.pg_url, name)


def test_migrations_create_every_table_and_are_idempotent(servers):
    name, url = _fresh(servers)
    try:
        first = migrate.migrate(url)
        assert first == [m.version for m in migrate.available()]
        assert migrate.migrate(url) == []
        with psycopg.connect(url) as conn:
            tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
            assert TABLES <= tables
            assert migrate.is_current(conn)
    finally:
        cluster.drop_database(servers.pg_url, name)


def test_four_processes_migrating_at_once_apply_each_version_once(servers, tmp_path):
    name, url = _fresh(servers)
    try:
        env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": url, "LOG_FORMAT": "json"}
        procs = [subprocess.Popen([str(VENV_BIN / "agentsys-migrate")], env=env, cwd=tmp_path,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(4)]
        outputs = [p.communicate(timeout=120)[0] for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0, 0], outputs
        with psycopg.connect(url) as conn:
            rows = conn.execute("SELECT version, count(*) FROM schema_migrations GROUP BY version").fetchall()
        assert sorted(v for v, _ in rows) == [m.version for m in migrate.available()]
        assert all(c == 1 for _, c in rows)
        # exactly one process did the work; the others found nothing left
        applied_lists = [o for o in outputs if '"applied": [1' in o]
        assert len(applied_lists) == 1, outputs
    finally:
        cluster.drop_database(servers.pg_url, name)


def test_changed_migration_is_refused(servers, monkeypatch):
    name, url = _fresh(servers)
    try:
        migrate.migrate(url)
        original = migrate.available

        def edited() -> list[migrate.Migration]:
            ms = original()
            return [migrate.Migration(ms[0].version, ms[0].name, ms[0].sql + "\n-- edited"), *ms[1:]]

        monkeypatch.setattr(migrate, "available", edited)
        try:
            migrate.migrate(url)
        except RuntimeError as error:
            assert "changed after it was applied" in str(error)
        else:
            raise AssertionError("an edited migration was accepted")
    finally:
        cluster.drop_database(servers.pg_url, name)
