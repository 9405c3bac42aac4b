"""Plain SQL migrations, applied in order by one entry point under an advisory lock.

Many processes may start at once (workers scaled to N): the lock makes all but one wait,
and each then finds nothing left to apply.
"""

from __future__ import annotations

import argparse
import hashlib
from dataclasses import dataclass
from importlib import resources

import psycopg

from agentsys import db

LOCK_KEY = 0x61676E74_6D696772 & 0x7FFFFFFFFFFFFFFF
"""Advisory lock id held while migrating ('agntmigr')."""

TABLE = "schema_migrations"


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available() -> list[Migration]:
    """Migrations shipped with the library, in version order."""
    found = []
    for item in resources.files("agentsys.migrations").iterdir():
        if item.name.endswith(".sql"):
            version, _, rest = item.name.partition("_")
            found.append(Migration(int(version), rest.removesuffix(".sql"), item.read_text()))
    return sorted(found, key=lambda m: m.version)


def applied(conn: psycopg.Connection) -> dict[int, str]:
    exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (TABLE,)).fetchone()
    if not exists or not exists[0]:
        return {}
    return dict(conn.execute(f"SELECT version, checksum FROM {TABLE}").fetchall())


def migrate(url: str) -> list[int]:
    """Apply every pending migration; returns the versions applied by this call."""
    done: list[int] = []
    with db.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        try:
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {TABLE} (version integer PRIMARY KEY, name text NOT NULL,"
                " checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            have = applied(conn)
            for m in available():
                if m.version in have:
                    if have[m.version] != m.checksum:
                        raise RuntimeError(f"migration {m.version}_{m.name} was changed after it was applied")
                    continue
                with conn.transaction():
                    conn.execute(m.sql)
                    conn.execute(
                        f"INSERT INTO {TABLE} (version, name, checksum) VALUES (%s, %s, %s)",
                        (m.version, m.name, m.checksum),
                    )
                done.append(m.version)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
    return done


def is_current(conn: psycopg.Connection) -> bool:
    """True when every shipped migration is applied (readiness)."""
    have = applied(conn)
    return all(m.version in have for m in available())


def main(argv: list[str] | None = None) -> int:
    """``agentsys-migrate``: apply pending migrations to DATABASE_URL."""
    from agentsys.errors import first_line
    from agentsys.exitcodes import RET_CONNECT, RET_OK
    from agentsys.logging import configure_logging, get_logger
    from agentsys.settings import CommonSettings, load

    parser = argparse.ArgumentParser(prog="agentsys-migrate", description=main.__doc__)
    parser.parse_args(argv)
    settings = load(CommonSettings)
    configure_logging("migrate", level=settings.log_level, fmt=settings.log_format)
    try:
        versions = migrate(settings.database)
    except psycopg.OperationalError as error:
        print(f"cannot reach PostgreSQL: {first_line(error)}")
        return RET_CONNECT
    get_logger("agentsys.migrate").info("migrated", applied=versions)
    return RET_OK
