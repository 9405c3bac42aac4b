from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import psycopg

from postgres_service import cluster


def test_cluster_starts_as_an_unprivileged_user():
    tmp_path = Path(tempfile.mkdtemp(prefix="agentsys-pg-"))
    tmp_path.chmod(0o755)
    pg = cluster.start(tmp_path / "pg", fast=True)
    try:
        with psycopg.connect(pg.url()) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        owner = os.stat(tmp_path / "pg" / "data").st_uid
        assert owner != 0 or os.geteuid() != 0
    finally:
        pg.stop()
        shutil.rmtree(tmp_path, ignore_errors=True)
