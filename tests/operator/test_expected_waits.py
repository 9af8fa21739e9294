"""A run that waits (for its database, a Job slot, its project's turn) logs INFO, not an ERROR per retry."""
from __future__ import annotations

import asyncio
import logging

import pytest

from codebase_operator.waits import ExpectedWaitsAtInfo, Waiting
from tests.support.resources import RUNS, run_manifest

from .test_operator_scenarios import NS, until_condition


@pytest.mark.slow
async def test_a_run_waiting_for_its_database_logs_no_error(k8s_cluster, codebase_operator, caplog):
    caplog.set_level(logging.INFO)
    await k8s_cluster.client.create(RUNS, NS, run_manifest("patient", "not-yet-created", mode="Full"))
    await until_condition(k8s_cluster, RUNS, "patient", "Succeeded", "Unknown", "WaitingForDatabase")
    await asyncio.sleep(2.5)  # several retries (the test operator's backoff is at most 1 s)

    records = [r for r in caplog.records if r.name.startswith("kopf")]
    waits = [r for r in records if "waiting for the database of project not-yet-created" in r.getMessage()]
    assert len(waits) >= 2, [r.getMessage() for r in records]
    assert all(r.levelno == logging.INFO for r in waits), [(r.levelname, r.getMessage()) for r in waits]
    assert all("will retry: " in r.getMessage() and "failed" not in r.getMessage() for r in waits)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [(r.name, r.getMessage()) for r in errors]


def kopf_retry_record(message: str) -> logging.LogRecord:
    return logging.LogRecord("kopf.objects", logging.ERROR, __file__, 1,
                             f"Handler 'start_run' failed temporarily: {message}", (), None)


def test_other_temporary_errors_stay_errors():
    filter_ = ExpectedWaitsAtInfo()
    Waiting("waiting for a free indexer slot: 8 of 8 indexer Jobs are active", delay=1)
    expected = kopf_retry_record("waiting for a free indexer slot: 8 of 8 indexer Jobs are active")
    real = kopf_retry_record("cannot provision the database: connection refused")
    assert filter_.filter(expected) and expected.levelno == logging.INFO
    assert filter_.filter(real) and real.levelno == logging.ERROR
