"""Human output: aligned tables and key/value blocks (``--json`` bypasses all of this)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

TASK_FIELDS = ("id", "type", "state", "priority", "progress", "queue", "worker", "attempts", "enqueued_at",
               "started_at", "ended_at", "error")


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str], *, empty: str = "(none)") -> str:
    if not rows:
        return empty
    cells = [[c.upper() for c in columns]] + [[_text(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in cells)


def task(found: dict[str, Any]) -> str:
    lines = [f"{name + ':':<12} {_text(found.get(name))}" for name in TASK_FIELDS]
    if found.get("params"):
        lines.append(f"{'params:':<12} {_text(found['params'])}")
    if found.get("result") is not None:
        lines.append(f"{'result:':<12} {_text(found['result'])}")
    traceback = found.get("traceback")
    if isinstance(traceback, dict) and traceback.get("text"):
        lines.append("traceback:\n" + traceback["text"].rstrip())
    return "\n".join(lines)


def agents(found: list[dict[str, Any]]) -> str:
    rows = [{**a, "depth": f"{a['queue_depth']}+{a['queue_depth_low']} low", "workers": ",".join(a["workers"]) or "-",
             "breakers": ",".join(f"{b['source']}:{b['state']}" for b in a["breakers"]) or "-"} for a in found]
    return table(rows, ("name", "enabled", "queue", "depth", "workers", "breakers"))


def workers(found: list[dict[str, Any]]) -> str:
    rows = [{**w, "queues": ",".join(w["queues"]),
             "rss_mb": None if w.get("rss_bytes") is None else round(w["rss_bytes"] / 2**20, 1)} for w in found]
    return table(rows, ("name", "state", "queues", "current_job", "successful_jobs", "failed_jobs", "rss_mb",
                        "cpu_seconds", "last_heartbeat"), empty="(no workers)")


def schedules(found: list[dict[str, Any]]) -> str:
    rows = [{**s, "every": f"{s['interval_s']}s" if s.get("interval_s") else s.get("cron")} for s in found]
    return table(rows, ("name", "type", "every", "timezone", "enabled", "priority"), empty="(no schedules)")
