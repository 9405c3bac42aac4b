"""Security across the stack: every mutating route of both apps (enumerated from ``app.routes``)
refuses a missing or wrong token, also through the gateway's ``/api`` proxy that the dashboard's
switches use; CORS is closed by default; the token never reaches a log or Redis; credentials come
only from the environment (no default secrets; ``.env`` is read for variables and never committed).
"""

from __future__ import annotations

import re
import secrets
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from agentsys.settings import CommonSettings
from tests.support import procs, wait

MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
TOKEN = "reliability-token-" + "9f3b1c7a5e2d4f60"
PATH_VALUES = {"task_id": "0123456789abcdef", "name": "price", "symbol": "AAA", "path": "tasks"}
REPO = Path(__file__).resolve().parents[2]


def _api_routes(routes: Any) -> list[tuple[set[str], str]]:
    """(methods, path) of every API route, included routers flattened (FastAPI's own walk)."""
    return [(set(ctx.methods or ()), ctx.path) for ctx in iter_route_contexts(routes)
            if isinstance(ctx.original_route, APIRoute)]


def _concrete(path: str) -> str:
    return re.sub(r"{(\w+)(:\w+)?}", lambda m: PATH_VALUES.get(m.group(1), "x"), path)


def mutating_routes(app: Any) -> list[tuple[str, str]]:
    return sorted({(method, path) for methods, path in _api_routes(app.routes) for method in methods & MUTATING})


def _orchestrator(stack, **extra: Any):
    from orchestrator.app import create_app
    from orchestrator.settings import OrchestratorSettings

    return create_app(OrchestratorSettings(api_token=TOKEN, _env_file=None, **extra))


BAD_HEADERS = ({}, {"Authorization": "Bearer wrong-token-0123456789abcdef"}, {"Authorization": f"Bearer {TOKEN}x"},
               {"Authorization": f"Basic {TOKEN}"}, {"Authorization": "Bearer"})


def test_every_mutating_orchestrator_route_refuses_a_missing_or_wrong_token(stack):
    app = _orchestrator(stack)
    routes = mutating_routes(app)
    assert len(routes) >= 10, routes
    assert {("POST", "/tasks"), ("PUT", "/agents/{name}")} <= set(routes), routes
    with TestClient(app) as client:
        for method, path in routes:
            for headers in BAD_HEADERS:
                r = client.request(method, _concrete(path), headers=headers, json={})
                assert r.status_code == 401, (method, path, headers, r.status_code, r.text[:200])
        for method, path in routes:  # the token opens them (whatever they then say about the body)
            r = client.request(method, _concrete(path), headers={"Authorization": f"Bearer {TOKEN}"}, json={})
            assert r.status_code != 401, (method, path)


@pytest.fixture
def orchestrator_process(stack):
    """A real agent-orchestrator with the token, for the gateway to proxy to."""
    from tests.orchestrator.conftest import serving

    with serving(stack, stack.tmp / "orchestrator.log", token=TOKEN) as url:
        yield url


def test_every_mutating_gateway_route_refuses_a_missing_or_wrong_token(stack, orchestrator_process):
    """The gateway's own mutating routes, and the orchestrator's behind its /api proxy: the dashboard's
    switches (PUT /api/agents/{name}) and buttons go that way, so they need the token too."""
    from gateway.app import create_app
    from gateway.settings import GatewaySettings

    app = create_app(GatewaySettings(api_token=TOKEN, orchestrator_url=orchestrator_process, _env_file=None))
    routes = mutating_routes(app)
    proxied = [p for _, p in routes if p.startswith("/api/{")]
    own = [(m, p) for m, p in routes if not p.startswith("/api/{")]
    targets = [(m, _concrete(p)) for m, p in own]
    if proxied:  # a catch-all proxy: every mutating orchestrator route through it
        targets += [(m, "/api" + _concrete(p)) for m, p in mutating_routes(_orchestrator(stack))]
        assert ("PUT", "/api/agents/price") in targets
    assert targets, "the gateway exposes no mutating route at all: nothing to check"
    with TestClient(app) as client:
        for method, path in targets:
            for headers in BAD_HEADERS:
                r = client.request(method, path, headers=headers, json={})
                assert r.status_code == 401, (method, path, headers, r.status_code, r.text[:200])
        switch = client.put("/api/agents/indicator", json={"enabled": False},
                            headers={"Authorization": f"Bearer {TOKEN}"})
        assert switch.status_code == 200, switch.text
        assert stack.redis.get(stack.keys.agent_flag("indicator")) in (b"0", b"false")
        client.put("/api/agents/indicator", json={"enabled": True}, headers={"Authorization": f"Bearer {TOKEN}"})


PREFLIGHT = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "authorization,content-type"}


def test_cors_is_closed_by_default_on_both_apps(stack, orchestrator_process):
    from gateway.app import create_app as gateway_app
    from gateway.settings import GatewaySettings

    apps = {"orchestrator": (_orchestrator(stack), "/tasks", "/agents"),
            "gateway": (gateway_app(GatewaySettings(api_token=TOKEN, orchestrator_url=orchestrator_process,
                                                    _env_file=None)), "/api/tasks", "/healthz")}
    for name, (app, write, read) in apps.items():
        with TestClient(app) as client:
            r = client.options(write, headers=PREFLIGHT)
            assert not any(h.startswith("access-control-allow") for h in r.headers), (name, dict(r.headers))
            r = client.get(read, headers={"Origin": "https://evil.example"})
            assert "access-control-allow-origin" not in r.headers, name
    # opened on purpose, only the listed origin gets in
    with TestClient(_orchestrator(stack, cors_origins="https://dash.example")) as client:
        ok = client.options("/tasks", headers={**PREFLIGHT, "Origin": "https://dash.example"})
        assert ok.headers.get("access-control-allow-origin") == "https://dash.example"
        assert "access-control-allow-origin" not in client.options("/tasks", headers=PREFLIGHT).headers


def _redis_values(redis) -> bytes:
    out = []
    for key in redis.scan_iter(count=1000):
        kind = redis.type(key)
        if kind == b"string":
            out.append(redis.get(key) or b"")
        elif kind == b"hash":
            out.extend(v for kv in redis.hgetall(key).items() for v in kv)
        elif kind == b"list":
            out.extend(redis.lrange(key, 0, -1))
        elif kind == b"set":
            out.extend(redis.smembers(key))
        elif kind == b"zset":
            out.extend(redis.zrange(key, 0, -1))
        out.append(key)
    return b"\n".join(out)


@pytest.mark.timeout(120)
def test_the_token_never_reaches_a_log_or_redis(stack):
    """A real orchestrator and worker with API_TOKEN set (and DEBUG logs) run tasks, refuse a wrong
    token and fail a job; then every log line and every value in Redis is searched for the token."""
    from tests.orchestrator.conftest import serving, zigzag_csv

    token = secrets.token_urlsafe(32)
    env = {**stack.env, "API_TOKEN": token, "LOG_LEVEL": "DEBUG"}
    worker = procs.agent_worker(env, stack.tmp / "worker.log", name="sec-1")
    auth = {"Authorization": f"Bearer {token}"}
    try:
        with serving(stack, stack.tmp / "orchestrator.log", token=token) as url, httpx.Client(base_url=url) as http:
            assert http.post("/tasks", json={"description": f"hello {token[:4]}"}).status_code == 401
            assert http.post("/tasks", json={"description": "x"},
                             headers={"Authorization": f"Bearer {token}-wrong"}).status_code == 401
            note = http.post("/tasks", json={"description": "with the token"}, headers=auth)
            replay = http.post("/tasks/replay", content=zigzag_csv(("SECA", "SECB"), n=80), headers={
                **auth, "Content-Type": "text/csv"})
            assert note.status_code == 202 and replay.status_code == 202, (note.text, replay.text)
            for task in (note.json(), replay.json()):
                done = http.get(f"/tasks/{task['id']}", params={"wait": 30}, headers=auth).json()
                assert done["state"] == "finished", done
            http.put("/agents/bang", json={"enabled": False}, headers=auth).raise_for_status()
            http.put("/agents/bang", json={"enabled": True}, headers=auth).raise_for_status()
            assert http.get("/metrics", headers=auth).status_code == 200
            # a job that fails: its traceback is logged and stored
            from rq.registry import FailedJobRegistry

            from agentsys import tasks as agent_tasks

            agent_tasks.queue(stack.redis, "indicator").enqueue("worker.agents.indicator.run", "not-a-shard")
            failed = FailedJobRegistry("indicator", connection=stack.redis)
            wait.until(lambda: failed.count == 1, timeout=30, what="the failing job")
    finally:
        procs.stop(worker)
    logs = {p.name: p.read_text() for p in (stack.tmp / "worker.log", stack.tmp / "orchestrator.log")}
    assert all(len(text) > 1000 for text in logs.values()), {k: len(v) for k, v in logs.items()}
    assert "Traceback" in logs["worker.log"] or "exception" in logs["worker.log"]
    for name, text in logs.items():
        assert token not in text, f"the token is in {name}"
        assert token[:16] not in text, f"part of the token is in {name}"
    assert token.encode() not in _redis_values(stack.redis)
    with stack.db() as conn:
        rows = conn.execute("SELECT params::text, coalesce(result::text, ''), coalesce(error, ''),"
                            " coalesce(traceback::text, '') FROM task_runs").fetchall()
    assert rows and not any(token in " ".join(r) for r in rows)


def _settings_classes() -> list[type[BaseSettings]]:
    import gateway.settings
    import orchestrator.settings
    import worker.settings

    found = {CommonSettings}
    for module in (worker.settings, orchestrator.settings, gateway.settings):
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, CommonSettings):
                found.add(value)
    return sorted(found, key=lambda c: c.__name__)


SECRET_WORDS = ("token", "password", "secret", "key", "credential")


def test_settings_have_no_default_secrets():
    from urllib.parse import urlsplit

    classes = _settings_classes()
    assert len(classes) >= 4, classes  # common, worker, orchestrator, gateway (and any others)
    checked = 0
    for cls in classes:
        for name, field in cls.model_fields.items():
            secretish = "SecretStr" in str(field.annotation) or (
                any(w in name for w in SECRET_WORDS) and field.annotation is not bool)
            if secretish and name != "key_prefix":
                assert field.default is None, f"{cls.__name__}.{name} has a default secret"
                checked += 1
            if name.endswith("_url") and field.default is not None:
                parts = urlsplit(str(field.default))
                assert parts.password is None, f"{cls.__name__}.{name} default carries a password"
    assert checked >= 4  # api_token at least, on every class
    assert "SecretStr" in str(CommonSettings.model_fields["api_token"].annotation)
    # a secret never prints with the settings
    settings = CommonSettings(api_token=SecretStr(TOKEN), _env_file=None)
    assert TOKEN not in repr(settings) and TOKEN not in str(settings)


def test_dotenv_is_read_for_variables_and_never_committed(tmp_path, monkeypatch):
    from worker.settings import WorkerSettings

    for name in ("API_TOKEN", "REDIS_URL", "WORKER_QUEUES"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / ".env").write_text(f"API_TOKEN={TOKEN}\nREDIS_URL=redis://127.0.0.1:6390/3\nWORKER_QUEUES=bang\n")
    monkeypatch.chdir(tmp_path)
    got = WorkerSettings()
    assert got.api_token is not None and got.api_token.get_secret_value() == TOKEN
    assert got.redis == "redis://127.0.0.1:6390/3" and got.worker_queues == "bang"
    monkeypatch.setenv("WORKER_QUEUES", "price")  # the environment wins over the file
    assert WorkerSettings().worker_queues == "price"
    # .env is git-ignored, and no .env file is tracked anywhere in the repository
    for path in (".env", "services/worker/.env", "deploy/.env"):
        ignored = subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO)
        assert ignored.returncode == 0, f"{path} is not git-ignored"
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert not [p for p in tracked.splitlines() if Path(p).name == ".env"], "a .env file is committed"
