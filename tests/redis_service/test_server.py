from __future__ import annotations

from redis import Redis

from redis_service import server


def test_local_server_runs_with_production_settings(tmp_path):
    rs = server.start(tmp_path / "r", password="a-long-test-password")
    try:
        client = Redis.from_url(rs.url())
        assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
        assert client.config_get("appendonly")["appendonly"] == "yes"
        assert client.ping()
        client.close()
    finally:
        rs.stop()
    assert rs.process.returncode is not None
