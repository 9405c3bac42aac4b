"""Process-mode configuration: worker layout, token, rendered supervisord config, reload mapping, units."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.run import config, reload

UNITS = config.ROOT / "deploy" / "process" / "systemd"


def _env(tmp: Path, **values: str) -> dict[str, str]:
    return {"ENV_FILE": str(tmp / ".env"), "RUN_DIR": str(tmp / "run"), **values}


def test_default_layout_is_two_all_agent_workers():
    assert config.worker_layout({}) == [config.WorkerSpec("worker-1", "control,bang,indicator,price"),
                                        config.WorkerSpec("worker-2", "control,bang,indicator,price")]
    assert [w.name for w in config.worker_layout({"WORKERS": "3"})] == ["worker-1", "worker-2", "worker-3"]


def test_per_agent_counts_give_dedicated_workers_and_a_control_worker():
    layout = config.worker_layout({"WORKERS_PRICE": "2", "WORKERS_BANG": "0"})
    assert [(w.name, w.queues) for w in layout] == [
        ("worker-price-1", "price"), ("worker-price-2", "price"), ("worker-indicator-1", "indicator"),
        ("worker-control-1", "control")]
    with pytest.raises(config.ConfigError, match="control"):
        config.worker_layout({"WORKERS_PRICE": "1", "WORKERS_CONTROL": "0"})
    assert [w.name for w in config.worker_layout({"WORKERS_PRICE": "1", "WORKERS_CONTROL": "0", "WORKERS": "1"})] == [
        "worker-1", "worker-price-1", "worker-indicator-1", "worker-bang-1"]
    with pytest.raises(config.ConfigError, match="WORKERS="):
        config.worker_layout({"WORKERS": "two"})


def test_first_run_writes_a_token_and_later_runs_keep_it(tmp_path):
    (tmp_path / ".env").write_text("PRICE_INTERVAL_S=2")
    first = config.resolve(_env(tmp_path))
    assert first.token_created and len(first.token) >= 32
    text = (tmp_path / ".env").read_text()
    assert text.startswith("PRICE_INTERVAL_S=2\n") and f"API_TOKEN={first.token}\n" in text
    assert (tmp_path / ".env").stat().st_mode & 0o077 == 0
    second = config.resolve(_env(tmp_path))
    assert second.token == first.token and not second.token_created
    assert second.env["PRICE_INTERVAL_S"] == "2" and second.env["API_TOKEN"] == first.token
    assert config.resolve(_env(tmp_path, API_TOKEN="x" * 20)).token == "x" * 20  # the environment wins


def test_existing_servers_are_used_and_nothing_is_started(tmp_path):
    own = config.resolve(_env(tmp_path, REDIS_PORT="7001", POSTGRES_PORT="7002"))
    assert own.servers == ["redis", "postgres"]
    assert own.redis_url == "redis://127.0.0.1:7001/0" and own.database_url.endswith(":7002/agentsys")
    given = config.resolve(_env(tmp_path, REDIS_URL="redis://10.0.0.1:6379/3",
                                DATABASE_URL="postgresql://u@10.0.0.2/db"))
    assert given.servers == [] and given.env["REDIS_URL"] == "redis://10.0.0.1:6379/3"
    conf = configparser.ConfigParser(interpolation=None)
    conf.read_string(config.render(given))
    assert "program:redis" not in conf and "program:postgres" not in conf


def test_rendered_config_runs_the_container_commands(tmp_path):
    cfg = config.resolve(_env(tmp_path, WORKERS_PRICE="1", RELOAD="1", API_PORT="8100", GATEWAY_PORT="8180"))
    conf = configparser.ConfigParser(interpolation=None)
    conf.read_string(config.render(cfg))
    bindir = Path(sys.executable).parent
    assert conf["program:orchestrator"]["command"] == f"{bindir}/agent-orchestrator --host 127.0.0.1 --port 8100"
    assert conf["program:gateway"]["command"] == f"{bindir}/agent-gateway --host 127.0.0.1 --port 8180"
    assert conf["program:scheduler"]["command"].startswith(f"{bindir}/agent-scheduler")
    assert conf["program:migrate"]["command"] == f"{bindir}/agentsys-migrate"
    price = conf["program:worker-price-1"]
    assert price["command"] == f"{bindir}/agent-worker --name worker-price-1 --queues price"
    assert price["autorestart"] == "true" and price["stopsignal"] == "TERM"
    assert price["stdout_logfile"] == f"{cfg.run_dir}/logs/worker-price-1.log"
    assert "program:reloader" in conf
    assert cfg.env["WORKER_WITH_SCHEDULER"] == "false" and cfg.env["LOG_FORMAT"] == "json"
    assert cfg.env["PYTHONPATH"].split(":")[0] == str(config.ROOT / "libs/agentsys")


def test_reload_maps_changes_to_the_programs_running_them():
    root = config.ROOT
    programs = ["worker-1", "worker-price-1", "worker-indicator-1", "worker-bang-1", "worker-control-1",
                "scheduler", "orchestrator", "gateway", "redis"]
    worker = root / "services/worker/worker"

    def hit(*paths: str) -> set[str]:
        return reload.targets([root / p for p in paths], root, programs)

    assert hit("services/worker/worker/agents/price.py") == {"worker-1", "worker-price-1"}
    assert hit("services/worker/worker/agents/bang.py") == {"worker-1", "worker-bang-1"}
    all_workers = {p for p in programs if p.startswith("worker-")}
    assert hit("services/worker/worker/agents/store.py") == all_workers
    assert hit("services/worker/worker/jobs/control.py") == all_workers
    assert hit("services/worker/worker/scheduler.py") == {"scheduler"}
    assert hit("libs/agentsys/agentsys/tasks.py") == all_workers | {"scheduler", "orchestrator", "gateway"}
    assert hit("services/orchestrator/orchestrator/app.py") == {"orchestrator"}
    assert hit("services/gateway/gateway/app.py") == {"gateway"}
    assert hit("README.md") == set()
    assert worker.exists()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_units_parse(tmp_path):
    bindir = Path(sys.executable).parent
    for unit in UNITS.iterdir():
        (tmp_path / unit.name).write_text(unit.read_text().replace("/opt/agentsys/.venv/bin", str(bindir)))
    units = sorted(str(p) for p in tmp_path.iterdir())
    done = subprocess.run(["systemd-analyze", "verify", "--man=no", *units], capture_output=True, text=True,
                          env={"SYSTEMD_LOG_LEVEL": "warning", "PATH": "/usr/bin:/bin"}, timeout=60)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
    names = {p.name for p in UNITS.iterdir()}
    for service in ("redis", "postgres", "migrate", "orchestrator", "gateway", "scheduler", "worker@"):
        assert f"agentsys-{service}.service" in names


def test_the_demo_shards_follow_its_size():
    from agentsys import defaults
    from scripts.run import bootstrap

    assert bootstrap.demo_shard_size(50) == 25  # two shards, as before
    assert bootstrap.demo_shard_size(1_000) == 500
    big = 2 * defaults.SHARD_SIZE
    assert bootstrap.demo_shard_size(big) == defaults.SHARD_SIZE == bootstrap.demo_shard_size(10 * big)  # POST's
