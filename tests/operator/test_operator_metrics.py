"""The operator's own Prometheus endpoint (--metrics-port), scraped while the real operator works."""
from __future__ import annotations

import argparse
import dataclasses
import socket

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from codebase_operator.command import add_arguments, config_from_args
from tests.support.k8s import OperatorThread, eventually
from tests.support.resources import RUNS, run_manifest

from .test_operator_scenarios import NS, drop_databases, ready_project, repo, until_condition  # noqa: F401 (fixtures)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert response.status_code == 200
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


@pytest.fixture
async def operator_with_metrics(operator_config):
    port = free_port()
    operator = OperatorThread(dataclasses.replace(operator_config, metrics_port=port))
    await operator.astart()
    try:
        yield port
    finally:
        await operator.astop()
    with pytest.raises(httpx.TransportError):  # the endpoint stops with the operator
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)


@pytest.mark.slow
async def test_metrics_count_reconciles_jobs_and_run_durations(
        k8s_cluster, operator_with_metrics, test_kubelet, unique_project_id, drop_databases, repo):
    port = operator_with_metrics
    drop_databases.append(unique_project_id)
    await ready_project(k8s_cluster, "gamma", unique_project_id, repo)
    samples = scrape(port)
    reconciled = ("codebase_operator_reconciles_total", (("handler", "reconcile_project"),
                                                         ("resource", "codebaseproject")))
    assert samples[reconciled] > 0

    test_kubelet.hold("measured")
    await k8s_cluster.client.create(RUNS, NS, run_manifest("measured", "gamma"))
    await until_condition(k8s_cluster, RUNS, "measured", "Succeeded", "Unknown", "Pending")
    await eventually(lambda: scrape(port)[("codebase_operator_active_jobs", ())] == 1 or None,
                     timeout=10, interval=0.2, message="one active Job")
    test_kubelet.release("measured")
    await until_condition(k8s_cluster, RUNS, "measured", "Succeeded", "True", "Succeeded", timeout=90)

    async def finished():
        samples = scrape(port)
        return samples if samples[("codebase_operator_active_jobs", ())] == 0 else None
    samples = await eventually(finished, timeout=10, interval=0.2, message="no active Job")
    assert samples[("codebase_operator_run_duration_seconds_count", (("reason", "Succeeded"),))] >= 1
    assert samples[("codebase_operator_reconciles_total", (("handler", "start_run"), ("resource", "indexingrun")))] > 0


def test_the_metrics_port_flag_defaults_to_9100_and_0_turns_it_off():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    base = ["--admin-database-url", "postgresql://admin@db/postgres"]
    assert config_from_args(parser.parse_args(base)).metrics_port == 9100
    assert config_from_args(parser.parse_args([*base, "--metrics-port", "0"])).metrics_port == 0
    with pytest.raises(ValueError, match="--metrics-port"):
        config_from_args(parser.parse_args([*base, "--metrics-port", "70000"]))


def test_a_run_finished_twice_by_a_replayed_event_is_measured_once():
    from prometheus_client import REGISTRY

    from codebase_operator import metrics

    def measured() -> tuple[float, float]:
        return tuple(REGISTRY.get_sample_value(f"codebase_operator_run_duration_seconds_{part}",
                                               {"reason": "Failed"}) or 0.0 for part in ("sum", "count"))

    before = measured()
    for _ in range(2):
        metrics.observe_run_end("uid-replayed", {"startTime": "2026-12-02T10:00:00Z"}, "Failed",
                                "2026-12-02T10:01:30Z")
    after = measured()
    assert (after[0] - before[0], after[1] - before[1]) == (90.0, 1.0)
