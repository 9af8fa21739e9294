"""spec.refresh.schedule: a standard 5-field cron expression (UTC), exclusive with spec.refresh.interval."""
from __future__ import annotations

import dataclasses
import datetime

import pykube
import pytest

from codebase_indexer import contract
from codebase_operator import cadence, cron, refresh
from codebase_operator.context import Context
from codebase_operator.kube import load_config
from codebase_operator.specs import InvalidSpec
from tests.operator.test_operator_scenarios import NS, get
from tests.support.resources import PROJECTS, RUNS, project_manifest


def at(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def next_times(expression: str, after: str, count: int = 3) -> list[str]:
    schedule, moment, found = cron.parse(expression), at(after), []
    for _ in range(count):
        moment = schedule.next_after(moment)
        found.append(moment.strftime("%Y-%m-%dT%H:%MZ"))
    return found


def test_fields_ranges_lists_and_steps():
    assert next_times("* * * * *", "2026-12-02T10:00:30Z") == [
        "2026-12-02T10:01Z", "2026-12-02T10:02Z", "2026-12-02T10:03Z"]
    assert next_times("*/15 * * * *", "2026-12-02T10:00:00Z") == [
        "2026-12-02T10:15Z", "2026-12-02T10:30Z", "2026-12-02T10:45Z"]
    assert next_times("5,35 8-9 * * *", "2026-12-02T09:40:00Z") == [
        "2026-12-03T08:05Z", "2026-12-03T08:35Z", "2026-12-03T09:05Z"]
    assert next_times("0 0-23/12 * * *", "2026-12-02T10:00:00Z", 2) == ["2026-12-02T12:00Z", "2026-12-03T00:00Z"]
    assert next_times("10/20 * * * *", "2026-12-02T10:00:00Z") == [
        "2026-12-02T10:10Z", "2026-12-02T10:30Z", "2026-12-02T10:50Z"]
    # Across a year end, on a leap day.
    assert next_times("0 0 1 1 *", "2026-12-02T10:00:00Z", 1) == ["2027-01-01T00:00Z"]
    assert next_times("30 6 29 2 *", "2026-12-02T10:00:00Z", 1) == ["2028-02-29T06:30Z"]


def test_days_of_month_and_week_match_either_when_both_are_restricted():
    # 2026-12-02 is a Wednesday. Mondays (1) and Sundays (0 and 7).
    assert next_times("0 12 * * 1", "2026-12-02T00:00:00Z", 2) == ["2026-12-07T12:00Z", "2026-12-14T12:00Z"]
    assert next_times("0 12 * * 7", "2026-12-02T00:00:00Z", 1) == next_times("0 12 * * 0", "2026-12-02T00:00:00Z", 1)
    # Both restricted: the 10th or any Monday.
    assert next_times("0 12 10 * 1", "2026-12-02T00:00:00Z", 3) == [
        "2026-12-07T12:00Z", "2026-12-10T12:00Z", "2026-12-14T12:00Z"]
    # A day field starting with * counts as unrestricted: odd days that are Mondays.
    assert next_times("0 12 */2 * 1", "2026-12-02T00:00:00Z", 1) == ["2026-12-07T12:00Z"]


@pytest.mark.parametrize("expression, complaint", [
    ("", "non-empty"), (None, "non-empty"), (5, "non-empty"),
    ("* * * *", "5 fields"), ("* * * * * *", "5 fields"),
    ("60 * * * *", "minute"), ("* 24 * * *", "hour"), ("* * 0 * *", "day of month"), ("* * * 13 *", "month"),
    ("* * * * 8", "day of week"), ("5-1 * * * *", "ascending"), ("*/0 * * * *", "step"), ("*/61 * * * *", "step"),
    ("0 0 * * MON", "day of week"), ("0 0 L * *", "day of month"), ("1,,2 * * * *", "minute"),
    ("-1 * * * *", "minute"), ("0 0 31 2 *", "never fires"), ("0 0 30,31 2 *", "never fires"),
    ("* " * 60 + "*", "at most 100"),
])
def test_bad_expressions_are_refused_naming_the_field(expression, complaint):
    with pytest.raises(cron.InvalidCron, match=complaint):
        cron.parse(expression)


def test_refresh_takes_one_of_interval_and_schedule():
    assert cadence.refresh_cadence({"refresh": {"schedule": "0 * * * *"}}, 60).trigger == "schedule"
    assert cadence.refresh_cadence({"refresh": {"interval": "5m"}}, 60) == cadence.Cadence("interval", 300)
    for spec in ({"interval": "5m", "schedule": "0 * * * *"}, {}):
        with pytest.raises(InvalidSpec, match="exactly one of interval"):
            cadence.refresh_cadence({"refresh": spec}, 60)
    with pytest.raises(InvalidSpec, match="spec.refresh.schedule: cron field hour"):
        cadence.refresh_cadence({"refresh": {"schedule": "0 25 * * *"}}, 60)


def test_a_schedule_is_not_followed_closer_than_the_operators_minimum():
    every_minute = cadence.refresh_cadence({"refresh": {"schedule": "* * * * *"}}, 150)
    assert every_minute.after(at("2026-12-02T10:00:00Z")) == at("2026-12-02T10:03:00Z")
    assert cadence.refresh_cadence({"refresh": {"schedule": "* * * * *"}}, 0).after(
        at("2026-12-02T10:00:00Z")) == at("2026-12-02T10:01:00Z")


@pytest.fixture
def operator_config(operator_config):
    return dataclasses.replace(operator_config, min_refresh_interval=1.0)


async def scheduled_runs(cluster, project):
    return sorted(run["metadata"]["name"] for run in await cluster.client.list(RUNS, NS)
                  if run["spec"]["projectRef"]["name"] == project
                  and run["metadata"]["labels"].get(contract.TRIGGER_LABEL) == "schedule")


async def test_an_every_minute_schedule_starts_a_run_at_each_minute_through_the_operators_sweep(
        k8s_cluster, operator_config):
    """The operator's refresh sweep at chosen moments (its test clock), against the API emulator: a run at
    the schedule's next minute after the last run, none before, none beside an unfinished one."""
    ctx = Context(config=operator_config, api=pykube.HTTPClient(load_config(operator_config.kubeconfig)))
    await k8s_cluster.client.create(PROJECTS, NS, project_manifest(
        "cron", "cron-project", path="tiny", refresh={"schedule": "* * * * *"}))
    await k8s_cluster.client.patch(PROJECTS, NS, "cron", {"status": {
        "conditions": [{"type": "DatabaseReady", "status": "True", "reason": "DatabaseReady", "message": "ready",
                        "lastTransitionTime": "2026-12-02T09:00:00Z"}],
        "lastRun": {"name": "earlier", "completionTime": "2026-12-02T10:00:30Z", "succeeded": True}}},
        subresource="status")

    await refresh.refresh_all(ctx, now=at("2026-12-02T10:00:45Z"))
    assert await scheduled_runs(k8s_cluster, "cron") == []
    assert (await get(k8s_cluster, PROJECTS, "cron"))["status"]["nextRefreshTime"] == "2026-12-02T10:01:00Z"

    await refresh.refresh_all(ctx, now=at("2026-12-02T10:01:00Z"))
    first = await scheduled_runs(k8s_cluster, "cron")
    assert len(first) == 1
    # The run is not finished (nothing runs its Job here): later sweeps start no other.
    await refresh.refresh_all(ctx, now=at("2026-12-02T10:02:05Z"))
    await refresh.refresh_all(ctx, now=at("2026-12-02T10:03:05Z"))
    assert await scheduled_runs(k8s_cluster, "cron") == first

    # Once it has ended (10:03:20), the next minute after that.
    await k8s_cluster.client.patch(RUNS, NS, first[0], {"spec": {"cancel": True}})
    await k8s_cluster.client.patch(PROJECTS, NS, "cron", {"status": {"lastRun": {
        "name": first[0], "completionTime": "2026-12-02T10:03:20Z", "succeeded": True}}}, subresource="status")
    await refresh.refresh_all(ctx, now=at("2026-12-02T10:03:40Z"))
    assert await scheduled_runs(k8s_cluster, "cron") == first
    assert (await get(k8s_cluster, PROJECTS, "cron"))["status"]["nextRefreshTime"] == "2026-12-02T10:04:00Z"
    await refresh.refresh_all(ctx, now=at("2026-12-02T10:04:00Z"))
    assert len(await scheduled_runs(k8s_cluster, "cron")) == 2
