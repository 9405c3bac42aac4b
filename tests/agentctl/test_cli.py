"""agentctl against a real orchestrator process over real Redis and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest

from agentctl import cli
from agentctl.cli import main
from tests.orchestrator.conftest import free_port, serving
from tests.support import procs

TOKEN = "agentctl-test-token-0123456789"


@pytest.fixture
def server(stack, tmp_path, monkeypatch):
    """A real orchestrator process; agentctl pointed at it with the token."""
    with serving(stack, tmp_path / "orchestrator.log", token=TOKEN) as url:
        monkeypatch.chdir(tmp_path)  # no stray .env
        monkeypatch.setenv("AGENTCTL_URL", url)
        monkeypatch.setenv("API_TOKEN", TOKEN)
        yield url


def _json(capsys, *argv):
    code = main(["--json", *argv])
    out = capsys.readouterr()
    assert code == cli.RET_OK, out.err
    return json.loads(out.out)


def test_submit_show_list(server, capsys):
    task = _json(capsys, "task", "submit", "note", "--param", "description=hello there", "--priority", "high")
    assert task["type"] == "note" and task["params"] == {"description": "hello there"} and task["priority"] == "high"
    shown = _json(capsys, "task", "show", task["id"])
    assert shown["id"] == task["id"] and shown["state"] == "queued"
    assert main(["task", "show", task["id"]]) == cli.RET_OK
    human = capsys.readouterr().out
    assert f"id:          {task['id']}" in human and "state:       queued" in human

    second = _json(capsys, "task", "submit", "note", "--json-params", '{"description": "two", "tag": [1, 2]}')
    assert second["params"] == {"description": "two", "tag": [1, 2]}
    listed = _json(capsys, "task", "list", "--state", "queued", "--limit", "1")
    assert [t["id"] for t in listed["items"]] == [second["id"]] and listed["next_cursor"]
    rest = _json(capsys, "task", "list", "--cursor", listed["next_cursor"])
    assert [t["id"] for t in rest["items"]] == [task["id"]]
    assert main(["task", "list", "--type", "note"]) == cli.RET_OK
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["ID", "TYPE", "STATE"] and len(table) == 3


def test_show_wait_with_a_real_worker(server, stack, tmp_path, capsys):
    worker = procs.rq_worker(stack.env, tmp_path / "w.log", "control", name=f"w-{uuid.uuid4().hex[:8]}")
    try:
        task = _json(capsys, "task", "submit", "note", "--param", "description=wait for me")
        done = _json(capsys, "task", "show", task["id"], "--wait", "30")
        bare = _json(capsys, "task", "submit", "note", "--param", "description=bare wait", "--wait")
        shown = _json(capsys, "task", "show", bare["id"], "--wait")  # alone: waits until it ends
    finally:
        procs.stop(worker)
    assert done["state"] == "finished" and done["result"]["description"] == "wait for me"
    assert bare["state"] == "finished" and shown["state"] == "finished"


def test_wait_runs_out(server, capsys):
    code = main(["task", "submit", "note", "--param", "description=nobody", "--wait", "0.3"])
    assert code == cli.RET_TIMEOUT and "state:       queued" in capsys.readouterr().out


def test_agents_enable_disable(server, capsys):
    agents = _json(capsys, "agents")
    assert [a["name"] for a in agents] == ["price", "indicator", "bang"] and all(a["enabled"] for a in agents)
    assert _json(capsys, "agent", "disable", "bang")["enabled"] is False
    assert main(["agents"]) == cli.RET_OK
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows["bang"][1] == "no" and rows["price"][1] == "yes"
    assert _json(capsys, "agent", "enable", "bang")["enabled"] is True


def test_queues_workers_schedules(server, capsys):
    assert len(_json(capsys, "queues")) == 8
    assert _json(capsys, "workers") == []
    assert main(["schedules"]) == cli.RET_OK and "(no schedules)" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "code", "message"), [
    (["task", "show", "0123456789abcdef"], cli.RET_NOT_FOUND, "404: no task"),
    (["task", "submit", "nope"], cli.RET_INPUT, "422: body.type"),
    (["task", "submit", "note", "--param", "descr"], cli.RET_USAGE, "not key=value"),
    (["task", "submit", "note", "--json-params", "[1]"], cli.RET_USAGE, "JSON object"),
    (["agent", "enable", "nobody"], cli.RET_INPUT, "422: path.name"),
])
def test_errors_are_one_line_and_an_exit_status(server, capsys, argv, code, message):
    assert main(argv) == code
    err = capsys.readouterr().err
    assert err.startswith("agentctl: ") and message in err and err.count("\n") == 1


def test_wrong_token_and_unreachable_api(server, capsys, monkeypatch):
    monkeypatch.setenv("API_TOKEN", "not-the-token-0123456789")
    assert main(["agent", "disable", "price"]) == cli.RET_AUTH
    err = capsys.readouterr().err
    assert "401" in err and "not-the-token" not in err
    assert main(["--url", f"http://127.0.0.1:{free_port()}", "agents"]) == cli.RET_CONNECT
    assert "cannot reach the API" in capsys.readouterr().err


def test_url_and_token_from_dotenv(server, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("AGENTCTL_URL")
    monkeypatch.delenv("API_TOKEN")
    (tmp_path / ".env").write_text(f"ORCHESTRATOR_URL={server}\nAPI_TOKEN={TOKEN}\n")
    assert _json(capsys, "agent", "disable", "indicator")["enabled"] is False


def test_the_console_script(server):
    done = subprocess.run([str(procs.VENV_BIN / "agentctl"), "--json", "agents"], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert [a["name"] for a in json.loads(done.stdout)] == ["price", "indicator", "bang"]
