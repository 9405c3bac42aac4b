"""The API under schemathesis' stateful testing: chains of calls along the OpenAPI links, no 5xx.

The schema's links (orchestrator/links.py) say which later calls take their parameters from a
response: a task's id from ``POST /tasks``, ``/tasks/replay`` and ``/agents/{name}/run`` into
``GET /tasks/{task_id}``, ``.../cancel`` and ``.../retry``; a symbol from ``POST /symbols`` into its
history and ``DELETE /symbols``; a schedule's name from ``PUT /schedules/{name}`` into its ``GET`` and
``DELETE``. schemathesis builds a state machine from those links (its own inferred links are off:
they would spend this small budget on guesses) and hypothesis runs short scenarios against a real
app over the test's own Redis db and database, emptied before each scenario. Every response must
be no 5xx and conform to the schema (the checks of tests/orchestrator/test_openapi.py), and the
links must have been followed at least once into a task that exists. Bounded (30 scenarios of at
most 6 calls, about 10 s) so it stays part of ``make test``; each run's figures go to
.bench/reliability.jsonl.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import FlakyStrategyDefinition

from orchestrator.app import create_app
from orchestrator.settings import OrchestratorSettings
from tests.orchestrator.conftest import AUTH, TOKEN
from tests.orchestrator.test_openapi import CHECKS  # and its text/csv serializer
from tests.reliability.conftest import FULL, report

SCENARIOS = 100 if FULL else 30
"""Scenarios hypothesis runs (each a chain of calls): more in make test-reliability."""
STEPS = 6
"""Calls per scenario at most."""
SETTINGS = hypothesis_settings(max_examples=SCENARIOS, stateful_step_count=STEPS, deadline=None, database=None,
                               phases=[Phase.generate], suppress_health_check=list(HealthCheck))
"""Generation only: a failure is reported with its calls as they ran, not shrunk (bounded runtime)."""
MAX_WAIT = 0.2
"""Seconds a generated long poll (GET /tasks/{task_id}?wait=) may wait at most."""
MAX_RESTARTS = 10
"""Runs hypothesis may abandon as flaky (see below) before the test settles for the scenarios it ran."""


def reset(stack) -> None:
    """Empty the test's Redis db and tables: every scenario starts from the same state, so hypothesis
    sees the same responses when it replays the same choices (else: FlakyStrategyDefinition)."""
    stack.redis.flushdb()
    with stack.db() as conn:
        conn.execute("SET lock_timeout = '10s'")
        tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                                              " AND tablename <> 'schema_migrations'")]
        conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")


@pytest.fixture
def app(stack):
    app = create_app(OrchestratorSettings(api_token=TOKEN, _env_file=None))
    with TestClient(app):  # run the app's lifespan around the generated calls
        yield app


def test_linked_calls_never_5xx_and_conform(stack, app):
    documented: Counter[tuple[str, int]] = Counter()  # (link, status) of the steps that followed a documented link
    statuses: Counter[int] = Counter()
    errors: list[BaseException] = []  # what any step raised: a failed check, an exception out of the app
    scenarios = 0

    schema = schemathesis.openapi.from_dict(app.openapi())
    schema.config.phases.stateful.inference.algorithms = []  # the documented links only (see the docstring)

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            nonlocal scenarios
            scenarios += 1
            reset(stack)

        def before_call(self, case: Any) -> None:
            # A linked GET /tasks/{task_id} finds a real task, which stays queued (no worker runs): a long
            # poll would wait out its ?wait= (up to 60 s) against the client's 10 s timeout. Keep it short.
            wait = (case.query or {}).get("wait")
            if case.operation.path == "/tasks/{task_id}" and isinstance(wait, int | float) and wait > MAX_WAIT:
                case.query["wait"] = MAX_WAIT

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"app": app, "headers": AUTH}

        def validate_response(self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any) -> None:
            __tracebackhide__ = True
            case.validate_response(response, checks=CHECKS, headers=AUTH, transport_kwargs=kwargs,
                                   recorder=self.recorder)

        def step(self, input: Any) -> Any:
            __tracebackhide__ = True
            try:
                output = super().step(input)
            except BaseException as exc:
                errors.append(exc)
                raise
            statuses[output.response.status_code] += 1
            transition = input.transition
            if transition is not None and not transition.is_inferred and input.is_applied:
                documented[(transition.id, output.response.status_code)] += 1
            return output

    began, restarts = time.monotonic(), 0
    while True:
        try:
            Workflow.run(settings=hypothesis_settings(SETTINGS, max_examples=max(1, SCENARIOS - scenarios)))
            break
        except FlakyStrategyDefinition:
            # A replayed prefix drew differently: schemathesis decides with a true random whether a step
            # uses a link's value, and some answers depend on more than the calls (fresh ids, time).
            # Not a finding, unless a step failed; schemathesis' own runner restarts likewise.
            if errors:
                raise errors[0] from None
            restarts += 1
            if restarts > MAX_RESTARTS or scenarios >= SCENARIOS:
                break
    seconds = time.monotonic() - began

    linked_ok = {link: n for (link, status), n in documented.items() if 200 <= status < 300}
    report("api_stateful", seconds=round(seconds, 1), scenarios=scenarios, restarts=restarts,
           calls=sum(statuses.values()), statuses=dict(sorted(statuses.items())),
           documented_links_followed=sum(documented.values()), documented_links_2xx=linked_ok,
           all_documented={f"{k[0]} {k[1]}": v for k, v in documented.items()})
    assert not errors, errors
    assert not [s for s in statuses if s >= 500], statuses  # the checks fail on one already; belt and braces
    # The links work: a task's id from a submit reached GET /tasks/{task_id}, which found the task.
    reads = [link for link in linked_ok if link.endswith("-> GET /tasks/{task_id}")]
    assert reads, f"no documented link into GET /tasks/{{task_id}} answered 2xx: {dict(documented)}"
