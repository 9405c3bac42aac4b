"""The live bench's arithmetic: lag per bar from shard watermarks, the verdict, the stack summary."""

from __future__ import annotations

import math
from pathlib import Path

from bench import live


def commit(shard: int, at: float, covered_s: int | None) -> dict[str, object]:
    return {"shard": shard, "committed_at": at, "covered_us": None if covered_s is None else covered_s * 1_000_000}


def test_a_bar_is_timed_from_its_end_to_the_first_commit_covering_it_for_the_whole_shard() -> None:
    commits = [commit(0, 101.5, 101), commit(0, 103.2, 103), commit(1, 100.4, 100), commit(1, 102.1, 102),
               commit(1, 103.1, 103)]
    p99, slope, per_bar = live.lags(commits, {0: 1, 1: 1}, 101, 103, now=110.0)
    # shard 0: bar 101 at 101.5 (0.5 s), 102 and 103 at 103.2 (1.2, 0.2); shard 1: 102.1 (1.1), 102.1 (0.1), 103.1
    assert [round(v, 3) for v in per_bar] == [1.1, 1.2, 0.2]
    assert math.isclose(p99, 1.2)
    assert slope < 0


def test_a_bar_never_covered_counts_until_now_and_the_larger_shard_weighs_more() -> None:
    commits = [commit(0, 100.2, 100), commit(1, 100.3, 105)]
    p99, _, per_bar = live.lags(commits, {0: 99, 1: 1}, 101, 101, now=108.0)
    assert per_bar == [7.0]  # shard 0 (99 of 100 symbols) has not covered bar 101 by now
    assert p99 == 7.0


def test_a_watermark_that_goes_back_does_not_uncover_a_bar() -> None:
    commits = [commit(0, 101.0, 101), commit(0, 102.0, 99)]  # a replace rewound it, say
    _, _, per_bar = live.lags(commits, {0: 10}, 101, 101, now=110.0)
    assert per_bar == [0.0]


def test_every_target_missed_is_named_and_a_missing_sample_fails() -> None:
    good = {"caught_up": True, "lag_p99_s": 1.0, "lag_slope_s_per_s": 0.0, "depth_start": 2.0, "depth_end": 2.5,
            "task_finish_p99_s": 0.5, "note_start_p99_s": 0.2, "bang_to_client_p99_ms": 20.0}
    assert live.judge(good) == []
    bad = {**good, "lag_p99_s": 2.5, "depth_end": 4.0, "bang_to_client_p99_ms": math.nan}
    failures = live.judge(bad)
    assert len(failures) == 3
    assert any("lag p99" in f for f in failures) and any("queues grew" in f for f in failures)
    assert any("bang to client" in f for f in failures)


def test_stacks_are_split_into_rq_around_the_job_and_our_functions(tmp_path: Path) -> None:
    (tmp_path / "worker-0.collapsed").write_text(
        'process 1:"agent-worker";main (worker/main.py:50);BaseWorker.work (rq/worker/base.py:673);'
        "Job.perform (rq/job.py:1478);run (worker/agents/bang.py:30);copy (psycopg/cursor.py:9) 3\n"
        'process 1:"agent-worker";main (worker/main.py:50);BaseWorker.work (rq/worker/base.py:673);'
        "fork (rq/worker/worker_classes.py:73) 1\n")
    text = "\n".join(live.summarise_stacks([tmp_path / "worker-0.collapsed"]))
    assert "4 samples; in the job function 75.0%, RQ around it" in text
    assert "75.0%  worker.agents.bang.run" in text
    assert "75.0%  psycopg" in text and "25.0%  rq" in text
