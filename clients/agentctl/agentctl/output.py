"""Human output: aligned tables and key/value blocks (``--json`` bypasses all of this).

:func:`grid` is the one table renderer: every command's table and the status screen use it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from agentsys.status import REGISTRIES

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


def grid(header: Sequence[object], rows: Sequence[Sequence[object]], *, strip: bool = True) -> list[str]:
    """The header and rows as lines of left-aligned columns, two spaces apart.

    ``strip`` drops the padding at the end of a line (``agentctl indicators`` and ``events``
    have always kept it).
    """
    cells = [[str(c) for c in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in cells]
    return [line.rstrip() for line in lines] if strip else lines


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str], *, empty: str = "(none)") -> str:
    if not rows:
        return empty
    return "\n".join(grid([c.upper() for c in columns], [[_text(r.get(c)) for c in columns] for r in rows]))


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


def _size(value: float | None) -> str:
    return "-" if value is None else f"{value / 2**20:.0f}M"


def status(data: dict[str, Any]) -> str:
    """``agentctl status`` for a terminal (:func:`agentsys.status.overview`): one block per subject."""
    lines = [f"status at {data['at']}", "", "QUEUES"]
    kinds = list(REGISTRIES)
    queues = [q for q in data["queues"] if q["depth"] or any(q[kd] for kd in kinds) or "." not in q["name"]]
    lines += grid(["queue", "depth", *kinds], [[q["name"], q["depth"], *(q[kd] for kd in kinds)] for q in queues])
    lines += ["", "WORKERS"]
    lines += grid(["worker", "pid", "queues", "state", "beat", "done", "failed", "rss", "job"],
                  [[w["name"], w["pid"], ",".join(q for q in w["queues"] if "." not in q), w["state"],
                    "-" if w["heartbeat_age_s"] is None else f"{w['heartbeat_age_s']:.0f}s", w["jobs_done"],
                    w["failures"], _size(w["rss_bytes"]), w["current_job"] or ""] for w in data["workers"]])
    sched = data["schedules"]
    lines += ["", f"SCHEDULES (leader: {sched['leader'] or 'none'})"]
    lines += grid(["schedule", "type", "every", "enabled", "last tick"],
                  [[s["name"], s["type"], s["every"], "yes" if s["enabled"] else "no", s["last_tick"] or "-"]
                   for s in sched["items"]])
    agents = data["flags"]["agents"]
    disabled = data["flags"]["disabled_symbols"]
    lines += ["", "FLAGS", "  " + "  ".join(f"{a}: {'on' if on else 'OFF'}" for a, on in agents.items())
              + (f"  disabled symbols: {', '.join(disabled[:20])}{' ...' if len(disabled) > 20 else ''}" if disabled else "")]
    lines += ["", "LAST BANGS"]
    if data["bangs"] is None:
        lines.append("  (PostgreSQL unreachable)")
    else:
        lines += grid(["ts", "symbol", "change", "price"],
                      [[b["ts"], b["symbol"], f"{b['from_state']} -> {b['to_state']}", f"{b['price']:.4f}"]
                       for b in data["bangs"]])
    return "\n".join(lines)
