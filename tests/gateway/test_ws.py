"""WS /ws against real Redis and PostgreSQL: filters, slow clients, metrics."""

from __future__ import annotations

import json
import threading

from tests.gateway.conftest import Client, RawClient, bang_message, gateway_server, metric
from tests.support.wait import until


def publish_all(stack, tag: str) -> None:
    """One message of each kind, then a task message ``marker`` that ends the batch."""
    ch = stack.keys.channels()
    base = 10 * (1 + sum(map(ord, tag)))  # distinct event ids per batch: the gateway de-duplicates by id
    stack.redis.publish(ch["update"], json.dumps({
        "kind": "update", "agent": "price", "shard": 0, "committed_at": 1.0,
        "symbols": {"AAA": {"ts": "2026-01-05T09:00:00+00:00", "price": 1.0},
                    "BBB": {"ts": "2026-01-05T09:00:00+00:00", "price": 2.0}}}))
    stack.redis.publish(ch["bang"], bang_message([
        {"id": base + 1, "symbol": "AAA", "ts": "2026-01-05T09:00:00+00:00", "from_state": "FLAT", "to_state": "BULL",
         "price": 1.0, "ema_fast": 1.0, "ema_mid": 1.0, "ema_slow": 1.0},
        {"id": base + 2, "symbol": "BBB", "ts": "2026-01-05T09:00:00+00:00", "from_state": "FLAT", "to_state": "BEAR",
         "price": 2.0, "ema_fast": 2.0, "ema_mid": 2.0, "ema_slow": 2.0}]))
    stack.redis.publish(ch["heartbeat"], json.dumps({"worker": "w1", "queues": ["price"], "state": "idle",
                                                     "current_job": None, "rss_bytes": 1, "cpu_seconds": 0.1,
                                                     "jobs_done": 1, "failures": 0, "last_job_ms": 1.0, "pid": 1,
                                                     "at": 1.0}))
    stack.redis.publish(ch["task"], json.dumps({"id": "t1", "type": "note", "state": "finished", "progress": 1.0,
                                                "worker": "w1", "error": None, "at": "2026-01-05T09:00:00+00:00"}))
    stack.redis.publish(ch["task"], json.dumps({"id": f"marker-{tag}", "type": "note", "state": "queued",
                                                "progress": 0, "worker": None, "error": None, "at": "x"}))


def batch(client: Client, tag: str) -> list[dict]:
    """What a client received of one publish_all batch (the marker excluded)."""
    got = client.until(lambda m: m.get("id") == f"marker-{tag}")
    return got[:-1]


def summary(messages: list[dict]) -> list[tuple]:
    out = []
    for m in messages:
        if m["kind"] == "bang":
            out.append(("bang", tuple(e["symbol"] for e in m["events"])))
        elif m["kind"] == "update":
            out.append(("update", tuple(sorted(m["symbols"]))))
        else:
            out.append((m["kind"],))
    return out


def test_filters_and_filter_changes(stack, gateway):
    with Client(gateway) as a, Client(gateway) as b:
        assert a.subscribe(kinds=["bang", "update", "task"], symbols=["AAA"]) == {
            "kind": "subscribed", "kinds": ["bang", "task", "update"], "symbols": {"bang": ["AAA"], "update": ["AAA"]}}
        b.subscribe(kinds=["task"])

        publish_all(stack, "1")
        got = batch(a, "1")
        assert summary(got) == [("update", ("AAA",)), ("bang", ("AAA",)), ("task",)]
        assert got[1]["cursor"] and got[1]["shard"] == 0 and got[2] == {
            "id": "t1", "type": "note", "state": "finished", "progress": 1.0, "worker": "w1", "error": None,
            "at": "2026-01-05T09:00:00+00:00", "kind": "task"}
        assert summary(batch(b, "1")) == [("task",)]

        # replace the filter: tasks and heartbeats only, then per-kind symbols
        a.subscribe(kinds=["task", "heartbeat"], symbols=None)
        publish_all(stack, "2")
        got = batch(a, "2")
        assert summary(got) == [("heartbeat",), ("task",)]
        assert got[0]["worker"] == "w1" and got[0]["kind"] == "heartbeat"

        a.subscribe(symbols={"bang": None, "update": ["BBB"]})
        publish_all(stack, "3")
        assert summary(batch(a, "3")) == [("update", ("BBB",)), ("bang", ("AAA", "BBB")), ("heartbeat",), ("task",)]
        assert summary(batch(b, "2")) == summary(batch(b, "3")) == [("task",)]


def test_refused_requests_get_errors(stack, gateway):
    with Client(gateway) as c:
        for request, words in [
            ("not json", "not JSON"),
            (json.dumps({"type": "dance"}), "unknown type"),
            (json.dumps({"type": "subscribe", "kinds": ["bangs"]}), "kinds must be"),
            (json.dumps({"type": "subscribe", "symbols": ["no spaces"]}), "not a symbol"),
            (json.dumps({"type": "subscribe", "symbols": {"task": ["AAA"]}}), "per-kind filters"),
            (json.dumps({"type": "backfill", "cursor": "1"}), "subscribe to kind 'bang'"),
            (json.dumps({"type": "backfill", "cursor": "x'; drop table"}), "cursor must be"),
        ]:
            c.conn.send(request)
            reply = c.recv()
            assert reply["kind"] == "error" and words in reply["error"], (request, reply)
        c.send({"type": "ping"})
        assert c.recv() == {"kind": "pong"}


def test_slow_client_is_dropped_and_fast_one_gets_everything(stack):
    pad = "x" * 64 * 1024
    n_sent = 0
    with gateway_server(gateway_client_buffer=8) as url:
        fast = Client(url)
        slow = RawClient(url)  # reads nothing until the test says so
        slow.send({"type": "subscribe", "kinds": ["heartbeat"]})
        fast.subscribe(kinds=["heartbeat"])
        until(lambda: metric(url, "gateway_ws_clients") == 2, timeout=10, what="both clients")
        received: list[int] = []

        def read_fast() -> None:
            while True:
                m = fast.recv(timeout=30)
                if m.get("seq") == -1:
                    return
                received.append(m["seq"])

        reader = threading.Thread(target=read_fast)
        reader.start()
        try:
            channel = stack.keys.channel_heartbeats
            while not metric(url, "gateway_ws_clients_dropped_total"):
                assert n_sent < 2000, "the slow client was never dropped"
                for _ in range(20):
                    stack.redis.publish(channel, json.dumps({"worker": "w", "seq": n_sent, "pad": pad}))
                    n_sent += 1
            # the fast client goes on receiving after the drop
            for _ in range(20):
                stack.redis.publish(channel, json.dumps({"worker": "w", "seq": n_sent, "pad": pad}))
                n_sent += 1
            stack.redis.publish(channel, json.dumps({"worker": "w", "seq": -1}))
            reader.join(60)
            assert not reader.is_alive()
            assert received == list(range(n_sent))
            code, reason = slow.close_frame(timeout=30)
            assert code == 4008 and "too slow" in reason
            assert metric(url, "gateway_ws_clients") == 1
        finally:
            fast.close()
            slow.close()


def test_metrics_move(stack, gateway):
    assert metric(gateway, "gateway_ws_clients") == 0
    with Client(gateway) as c:
        until(lambda: metric(gateway, "gateway_ws_clients") == 1, timeout=10, what="the client to count")
        c.subscribe(kinds=["task"])
        publish_all(stack, "m")
        batch(c, "m")
        assert metric(gateway, "gateway_messages_relayed_total", 'kind="task"') == 2
        assert metric(gateway, "gateway_pubsub_messages_received_total", 'kind="update"') == 1
    until(lambda: metric(gateway, "gateway_ws_clients") == 0, timeout=10, what="the client to leave")


def test_other_sites_pages_are_refused(stack, gateway):
    from websockets.exceptions import InvalidStatus

    host = gateway.removeprefix("http://")
    with Client(gateway, origin=f"http://{host}") as same:
        assert same.subscribe(kinds=["task"])["kind"] == "subscribed"
    try:
        Client(gateway, origin="http://evil.example").close()
    except InvalidStatus as refused:
        assert refused.response.status_code == 403
    else:
        raise AssertionError("a foreign origin was let in")


def test_an_update_published_as_columns_reaches_clients_as_entries_of_their_symbols(stack, gateway):
    """Workers publish a shard's tick as columns; clients get ``symbols: {symbol: {...}}`` as before."""
    ch = stack.keys.channels()
    with Client(gateway) as some, Client(gateway) as every:
        some.subscribe(kinds=["update", "task"], symbols=["BBB", "ZZZ"])
        every.subscribe(kinds=["update", "task"], symbols=None)
        stack.redis.publish(ch["update"], json.dumps({
            "kind": "update", "agent": "indicator", "shard": 3, "committed_at": 2.0,
            "columns": {"symbol": ["AAA", "BBB"], "ts": ["2026-01-05T09:00:00+00:00"] * 2, "price": [1.0, 2.0],
                        "ema_fast": [None, 2.5], "state": [None, "BULL"]}}))
        stack.redis.publish(ch["update"], json.dumps({"kind": "update", "columns": {"symbol": ["A"], "ts": []}}))
        stack.redis.publish(ch["task"], json.dumps({"id": "marker-c", "type": "note", "state": "queued",
                                                    "progress": 0, "worker": None, "error": None, "at": "x"}))
        got_some, got_every = batch(some, "c"), batch(every, "c")
    entry = {"ts": "2026-01-05T09:00:00+00:00", "price": 2.0, "ema_fast": 2.5, "state": "BULL"}
    assert [m["symbols"] for m in got_some if m["kind"] == "update"] == [{"BBB": entry}]
    assert got_some[0]["shard"] == 3 and "columns" not in got_some[0]
    assert [m["symbols"] for m in got_every if m["kind"] == "update"] == [{
        "AAA": {"ts": "2026-01-05T09:00:00+00:00", "price": 1.0, "ema_fast": None, "state": None}, "BBB": entry}]
    assert metric(gateway, "gateway_pubsub_messages_malformed_total", 'kind="update"') == 1  # columns of unequal length
