"""The tool runner: results, errors, time limit and cancel across worker processes."""

from __future__ import annotations

import asyncio
import os
import time

import pandas as pd
import pytest

from storage.errors import BadParameterError, MissingRoleError, ToolTimeoutError
from storage.store import store_frame
from tools.base import BaseTool, Params, Report
from tools.registry import Registry
from tools.runner import JobCrashedError, ToolCall, ToolRunner


class CountParams(Params):
    seconds: float = 0.0


class CountTool(BaseTool):
    name = "count"
    summary = "Count rows, optionally slowly."
    params_model = CountParams
    roles = ("order_id",)

    def run(self, dataset, params):
        time.sleep(params.seconds)
        rows = int(dataset.read_sql("SELECT COUNT(*) AS n FROM {table}")["n"].iloc[0])
        return Report(title="Rows", facts={"rows": rows, "pid": os.getpid()})


class NeedsCustomerTool(CountTool):
    name = "needs_customer"
    roles = ("customer_id",)


class BrokenTool(CountTool):
    name = "broken"

    def run(self, dataset, params):
        raise ZeroDivisionError("a bug")


class PickyTool(CountTool):
    name = "picky"

    def run(self, dataset, params):
        raise BadParameterError("k must be at most 3.", hint="Usage: /picky [k=2]")


@pytest.fixture
def runner(settings, engine):
    frame = pd.DataFrame({"order": ["1", "2", "3"], "item": ["tea", "milk", "tea"]})
    store_frame(
        engine,
        frame,
        chat_id=10,
        name="orders",
        roles={"order_id": "order", "product": "item"},
        kind="baskets",
    )
    registry = Registry([CountTool(), NeedsCustomerTool(), BrokenTool(), PickyTool()])
    limited = settings.model_copy(update={"tool_time_limit_s": 3.0})
    runner = ToolRunner(limited, registry)
    yield runner
    runner.close()


def test_runs_in_another_process_and_returns_the_report(runner):
    report = runner.run_sync(ToolCall("count", CountParams(), chat_id=10))
    assert report.facts["rows"] == 3
    assert report.facts["pid"] != os.getpid()


def test_reports_carry_the_currency_of_the_data(runner, engine):
    frame = pd.DataFrame({"order": ["1", "2"], "amount": [9.5, 3.0]})
    roles = {"order_id": "order", "amount": "amount"}
    stats = {"currency": "¥"}
    store_frame(engine, frame, chat_id=12, name="yuan", roles=roles, kind="orders", stats=stats)
    report = runner.run_sync(ToolCall("count", CountParams(), chat_id=12))
    assert report.facts["currency"] == "¥"


def test_user_errors_cross_the_process_boundary_intact(runner):
    with pytest.raises(MissingRoleError) as caught:
        runner.run_sync(ToolCall("needs_customer", CountParams(), chat_id=10))
    assert caught.value.role == "customer_id"
    assert "/map customer_id=" in str(caught.value)

    with pytest.raises(BadParameterError, match="at most 3"):
        runner.run_sync(ToolCall("picky", CountParams(), chat_id=10))


def test_a_bug_in_a_tool_is_reported_with_its_traceback(runner):
    with pytest.raises(JobCrashedError) as caught:
        runner.run_sync(ToolCall("broken", CountParams(), chat_id=10))
    assert "ZeroDivisionError" in caught.value.details


def test_other_chats_see_no_data(runner):
    with pytest.raises(Exception, match="no data yet"):
        runner.run_sync(ToolCall("count", CountParams(), chat_id=11))


def test_a_job_over_the_time_limit_is_stopped(runner):
    with pytest.raises(ToolTimeoutError, match="longer than 3 s"):
        runner.run_sync(ToolCall("count", CountParams(seconds=30), chat_id=10))


async def test_cancel_stops_a_running_job_and_the_loop_stays_free(runner):
    call = ToolCall("count", CountParams(seconds=30), chat_id=10)
    job = asyncio.create_task(runner.run(call, job_key="chat-10"))
    finished_first = []

    async def quick() -> None:
        await asyncio.sleep(0.3)
        finished_first.append(not job.done())
        assert runner.cancel("chat-10")

    await quick()
    with pytest.raises(ToolTimeoutError, match="cancelled"):
        await job
    assert finished_first == [True]
    assert not runner.cancel("chat-10")
