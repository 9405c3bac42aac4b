"""Resume cursors: writers that commit out of id order, reconnecting clients, lost Pub/Sub messages.

The writers here stand in for the pipeline's bang jobs: they insert into ``bang_events``
in their own transactions and, after committing, publish the message docs/interfaces.md
gives (that format is the contract the gateway relays).
"""

from __future__ import annotations

import random
import threading

import psycopg

from tests.gateway.conftest import Client, Writer, bang_message, event_row, gateway_server, metric
from tests.support.wait import until


def horizon_read(url: str) -> None:
    """Wait until the gateway has read its horizon again (after this call began)."""
    start = metric(url, "gateway_bang_horizon_reads_total")
    until(lambda: metric(url, "gateway_bang_horizon_reads_total") >= start + 2, timeout=10,
          interval=0.01, what="the gateway to read its horizon")


def waiting(stack) -> int:
    """Backfill reads waiting for a lock (asked from a new session: a transaction sees a frozen pg_stat_activity)."""
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                            " AND query LIKE '%ORDER BY txid, id LIMIT%'").fetchone()[0]


def all_ids(stack) -> set[int]:
    with stack.db() as conn:
        return {r[0] for r in conn.execute("SELECT id FROM bang_events")}


def test_resume_after_rows_committed_out_of_id_order(stack, gateway):
    a, b = Writer(stack, "AAA"), Writer(stack, "BBB")
    try:
        with Client(gateway) as client:
            client.subscribe(kinds=["bang"])
            assert client.backfill(None)[0] == []
            first = a.insert()[0]  # id n, its transaction stays open
            second = b.insert()[0]  # id n+1 commits first
            assert first["id"] < second["id"]
            b.commit()
            live = client.until(lambda m: m["kind"] == "bang")[-1]
            assert [e["id"] for e in live["events"]] == [second["id"]]
            horizon_read(gateway)  # the gateway looks again while the first is still open
            third = b.insert()[0]
            b.commit()
            live = client.until(lambda m: m["kind"] == "bang")[-1]
            assert [e["id"] for e in live["events"]] == [third["id"]]
            cursor = live["cursor"]
            assert int(cursor) <= int(first["txid"])  # "id > seen" would now skip the first row
        a.commit()  # while the client is away: it never hears this message
        with Client(gateway) as client:
            client.subscribe(kinds=["bang"])
            events, new_cursor, _ = client.backfill(cursor)
            assert first["id"] in {e["id"] for e in events}
            assert next(e for e in events if e["id"] == first["id"]) == event_row(first)
            assert int(new_cursor) >= int(cursor)
    finally:
        a.close()
        b.close()


def test_cursors_sent_during_a_backfill_stay_at_or_below_the_one_it_resumes_from(stack, gateway):
    """A page reloaded mid-backfill keeps a cursor that still covers what the backfill had not sent."""
    writer = Writer(stack, "AAA")
    try:
        with Client(gateway) as client:
            client.subscribe(kinds=["bang"])
            client.backfill(None)
            writer.insert()
            writer.commit()
            cursor = client.until(lambda m: m["kind"] == "bang")[-1]["cursor"]
        missed = writer.insert()[0]
        writer.commit()  # while the client is away
        horizon_read(gateway)
        with stack.db() as locker, Client(gateway) as client:
            client.subscribe(kinds=["bang"])
            locker.execute("LOCK TABLE bang_events IN ACCESS EXCLUSIVE MODE")  # the backfill's read waits
            client.send({"type": "backfill", "cursor": cursor, "after": None})
            until(lambda: waiting(stack), timeout=10, what="the backfill to wait for the lock")
            stack.redis.publish(stack.keys.channel_bangs, bang_message([{**event_row(missed), "id": 10**9}]))
            live = client.until(lambda m: m["kind"] == "bang")[-1]
            assert int(live["cursor"]) <= int(cursor) <= int(missed["txid"])
            locker.rollback()
            reply = client.until(lambda m: m["kind"] == "backfill")[-1]
            assert missed["id"] in {e["id"] for e in reply["events"]}
    finally:
        writer.close()


def test_a_lost_message_is_delivered_from_the_database(stack, gateway):
    writer = Writer(stack, "AAA")
    try:
        with Client(gateway) as client:
            client.subscribe(kinds=["bang", "task"], symbols=["AAA"])
            row = writer.insert()[0]
            writer.commit(publish=False)  # e.g. the bang job died between its commit and its publish
            message = client.until(lambda m: m["kind"] == "bang", timeout=15)[-1]
            assert message["source"] == "db" and message["events"] == [event_row(row)]
            assert metric(gateway, "gateway_bang_events_recovered_total") == 1
            # ...and when the message does come, late, after the horizon has moved past the row
            # (two more reads: the window no longer holds it), it is not delivered twice
            horizon_read(gateway)
            stack.redis.publish(stack.keys.channel_bangs, bang_message([event_row(row)]))
            stack.redis.publish(stack.keys.channel_tasks, '{"id": "marker"}')
            got = client.until(lambda m: m.get("id") == "marker")
            assert [m["kind"] for m in got] == ["task"]
    finally:
        writer.close()


def test_reconnecting_client_misses_nothing_while_two_writers_commit_concurrently(stack):
    """Two writers interleave transactions and commit in random order (out of id order about
    half the time), and drop a few publishes; a client disconnects and resumes all along."""
    rng = random.Random(6)
    writers = [Writer(stack, "AAA"), Writer(stack, "BBB")]
    received: set[int] = set()
    done = threading.Event()
    sessions = [0]
    errors: list[BaseException] = []

    def client_loop(url: str) -> None:
        cursor, pace = None, random.Random(7)
        try:
            while True:
                final = done.is_set()  # the last session starts after the last commit
                with Client(url) as client:
                    sessions[0] += 1
                    client.subscribe(kinds=["bang"])
                    if not final and pace.random() < 0.3:
                        # away again at the first message after asking (a page reloaded mid-backfill)
                        client.send({"type": "backfill", "cursor": cursor, "after": None})
                        m = client.recv()
                        received.update(e["id"] for e in m["events"])
                        cursor = m["cursor"]
                        continue
                    events, cursor, live = client.backfill(cursor)
                    received.update(e["id"] for e in events)
                    for m in live:
                        received.update(e["id"] for e in m["events"])
                    if final:
                        return
                    for _ in range(pace.randint(1, 6)):  # a few live messages, then away
                        try:
                            m = client.recv(timeout=0.3)
                        except TimeoutError:
                            break
                        received.update(e["id"] for e in m["events"])
                        cursor = m["cursor"]
        except BaseException as error:  # reported by the test thread
            errors.append(error)

    try:
        with gateway_server(gateway_backfill_limit=3, gateway_reconcile_interval=0.02) as url:
            reader = threading.Thread(target=client_loop, args=(url,))
            reader.start()
            out_of_order = 0
            for _ in range(40):
                for w in writers:
                    w.insert(rng.randint(1, 3))
                horizon_read(url)  # with both transactions open
                order = rng.sample(writers, 2)
                if order[0].pending[0]["id"] > order[1].pending[0]["id"]:
                    out_of_order += 1
                order[0].commit(publish=rng.random() > 0.1)
                if rng.random() < 0.5:
                    horizon_read(url)  # one committed, the other still open
                order[1].commit(publish=rng.random() > 0.1)
            assert out_of_order > 8
            until(lambda: sessions[0] > 5 or errors, timeout=30, what="the client to reconnect a few times")
            done.set()
            reader.join(60)
            assert not reader.is_alive() and not errors, errors
            expected = all_ids(stack)
            assert len(expected) > 70
            assert expected - received == set()
    finally:
        for w in writers:
            w.close()
