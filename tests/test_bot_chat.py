"""The chat core: built-in commands, tool runs, export, cancel, forget and chat isolation."""

from __future__ import annotations

import asyncio
import io
import time

import openpyxl
import pandas as pd
import pytest
from pydantic import Field
from sqlalchemy import select

from bot.chat import ChatCore
from bot.reply import Reply
from storage.catalog import run_log
from storage.datasets import list_datasets
from storage.store import store_frame
from tools.base import BaseTool, Chart, Followup, Params, Report, Table
from tools.registry import Registry
from tools.runner import ToolRunner

SHOP = 10
OTHER_SHOP = 20


class TopParams(Params):
    top: int = Field(3, ge=1, le=50, description="products to show")
    seconds: float = Field(0.0, ge=0, le=60, description="pretend to work this long")


class TopTool(BaseTool):
    """A quick tool over real data, with a table, a chart and a follow-up."""

    name = "top"
    summary = "Best-selling products"
    help = "Example: /top 5"
    params_model = TopParams
    positional = "top"
    roles = ("product",)
    phrases = ("best sellers", "畅销")

    def run(self, dataset, params) -> Report:
        time.sleep(params.seconds)
        product = dataset.quoted("product")
        frame = dataset.read_sql(
            f"SELECT {product} AS product, COUNT(*) AS orders FROM {{table}} "
            f"GROUP BY {product} ORDER BY orders DESC, product LIMIT :top",
            {"top": params.top},
        )
        return Report(
            title="Best sellers",
            tables=[Table(frame, caption="Top products")],
            charts=[Chart(b"\x89PNG\r\n\x1a\n", caption="bar")],
            followups=[Followup("Top 10", "/top 10")],
        )


@pytest.fixture
def core(settings, engine):
    for chat_id, items in ((SHOP, ["tea", "tea", "milk", "cake"]), (OTHER_SHOP, ["beer"])):
        frame = pd.DataFrame({"order": [str(n) for n in range(len(items))], "item": items})
        store_frame(
            engine,
            frame,
            chat_id=chat_id,
            name=f"shop{chat_id}",
            roles={"order_id": "order", "product": "item"},
            kind="baskets",
        )
    registry = Registry([TopTool()])
    runner = ToolRunner(settings.model_copy(update={"tool_time_limit_s": 20.0}), registry)
    core = ChatCore(settings, engine=engine, registry=registry, runner=runner)
    yield core
    runner.close()
    core.close()


async def say(core: ChatCore, text: str, chat_id: int = SHOP) -> Reply:
    reply = await core.handle_text(chat_id, text, user_id=1)
    assert reply is not None
    return reply


async def test_help_lists_builtins_and_tools(core):
    reply = await say(core, "/help")
    assert "/forget — " in reply.text and "/top — Best-selling products" in reply.text


async def test_help_for_a_tool_shows_usage_and_parameters(core):
    reply = await say(core, "/help top")
    assert "Usage: /top [top=3] [seconds=0.0]" in reply.text
    assert "top — products to show (a whole number in [1, 50]; default 3)" in reply.text


async def test_tool_command_answers_with_the_report_and_buttons(core):
    progress: list[str] = []

    async def record(step: str) -> None:
        progress.append(step)

    reply = await core.handle_text(SHOP, "/top 2", progress=record)
    assert reply is not None and not reply.error
    table = reply.report.tables[0].frame
    assert table.to_dict("list") == {"product": ["tea", "cake"], "orders": [2, 1]}
    assert [button.command for button in reply.buttons] == ["/top 10", "/export csv"]
    assert progress == ["running /top on 4 rows"]


async def test_sentences_are_routed_through_the_same_core(core):
    reply = await say(core, "show me the best sellers")
    assert reply.report is not None and reply.report.title == "Best sellers"


async def test_bad_parameter_answers_with_the_usage(core):
    reply = await say(core, "/top 99")
    assert reply.error and "Bad value for top: '99'" in reply.text
    assert reply.hint == "Usage: /top [top=3] [seconds=0.0]"


async def test_unknown_command_and_unknown_sentence(core):
    reply = await say(core, "/tpo")
    assert reply.error and reply.hint == "Did you mean /top?"
    confused = await say(core, "good morning")
    assert "did not understand" in confused.text


async def test_export_the_last_result_as_csv_and_xlsx(core):
    nothing = await say(core, "/export")
    assert "no result" in nothing.text
    await say(core, "/top 3")
    csv = (await say(core, "/export csv")).files[0]
    assert csv.filename == "top.csv"
    assert pd.read_csv(io.BytesIO(csv.data))["product"].tolist() == ["tea", "cake", "milk"]
    xlsx = (await say(core, "/export xlsx")).files[0]
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx.data)).active
    assert sheet.title == "Top products" and sheet["A2"].value == "tea"
    bad = await say(core, "/export pdf")
    assert bad.error


async def test_chats_never_see_each_others_data(core):
    mine = await say(core, "/datasets")
    theirs = await say(core, "/datasets", chat_id=OTHER_SHOP)
    assert "shop10" in mine.text and "shop20" not in mine.text
    assert "shop20" in theirs.text and "shop10" not in theirs.text
    steal = await say(core, "/use shop10", chat_id=OTHER_SHOP)
    assert steal.error and "no dataset called 'shop10'" in steal.text
    stranger = await say(core, "/top", chat_id=99)
    assert stranger.error and "no data yet" in stranger.text


async def test_use_switches_the_active_dataset(core, engine):
    frame = pd.DataFrame({"order": ["1"], "item": ["scone"]})
    roles = {"order_id": "order", "product": "item"}
    store_frame(engine, frame, chat_id=SHOP, name="spring", roles=roles, kind="baskets")
    listing = await say(core, "/datasets")
    assert "spring — 1 rows, baskets (active)" in listing.text
    assert [button.command for button in listing.buttons] == ["/use shop10"]
    await say(core, "/use shop10")
    reply = await say(core, "/top 1")
    assert reply.report.tables[0].frame["product"].tolist() == ["tea"]
    once = await say(core, "/top 1 dataset=spring")
    assert once.report.tables[0].frame["product"].tolist() == ["scone"]


async def test_cancel_stops_a_running_job_and_a_second_job_waits(core):
    job = asyncio.create_task(core.handle_text(SHOP, "/top seconds=30"))
    while core.running_tool(SHOP) is None:
        await asyncio.sleep(0.02)
    busy = await say(core, "/top")
    assert "/top is still running" in busy.text
    elsewhere = await say(core, "/help", chat_id=OTHER_SHOP)
    assert "/top" in elsewhere.text
    await asyncio.sleep(0.3)
    assert (await say(core, "/cancel")).text == "Stopping /top…"
    reply = await asyncio.wait_for(job, timeout=10)
    assert reply.error and "cancelled" in reply.text
    assert (await say(core, "/cancel")).text == "Nothing is running in this chat."


async def test_forget_needs_the_confirmation_button(core, engine):
    ask = await say(core, "/forget")
    confirm, keep = (button.command for button in ask.buttons)
    assert confirm.startswith("/forget confirm ") and keep == "/forget keep"
    forged = await say(core, "/forget confirm 00000000")
    assert "expired" in forged.text and list_datasets(engine, SHOP)
    stolen = await say(core, confirm, chat_id=OTHER_SHOP)
    assert "expired" in stolen.text and list_datasets(engine, OTHER_SHOP)

    await say(core, "/top")  # leaves a line in the run log
    await say(core, "/top", chat_id=OTHER_SHOP)
    done = await say(core, confirm)
    assert done.text == "Deleted 1 dataset(s), the results and the history of this chat."
    assert list_datasets(engine, SHOP) == [] and list_datasets(engine, OTHER_SHOP)
    with engine.connect() as connection:
        logged = connection.execute(select(run_log.c.chat_id)).scalars().all()
    assert SHOP not in logged and OTHER_SHOP in logged
    again = await say(core, confirm)
    assert "expired" in again.text


async def test_shutdown_refuses_new_jobs(core):
    await core.shutdown(grace=0)
    reply = await say(core, "/top")
    assert "restarting" in reply.text


async def test_start_greets_and_points_at_uploads(core):
    empty = await say(core, "/start", chat_id=99)
    assert "Send me a CSV" in empty.text
    known = await say(core, "/start")
    assert "1 dataset(s)" in known.text


def test_upload_size_is_checked_before_download(core, settings):
    from storage.errors import FileTooLargeError

    core.check_upload_size(1024)
    with pytest.raises(FileTooLargeError) as caught:
        core.check_upload_size(settings.max_upload_bytes + 1)
    assert "the limit is 50.0 MB" in caught.value.message
    assert "MARKETBOT_MAX_UPLOAD_MB" in caught.value.hint
    with pytest.raises(FileTooLargeError) as cloud:
        core.check_upload_size(25 * 1024 * 1024, channel_limit=20 * 1024 * 1024)
    assert "TELEGRAM_API_BASE_URL" in cloud.value.hint


async def test_map_shows_and_changes_column_roles(core):
    shown = await say(core, "/map")
    assert "product = item" in shown.text and "/map product=Description" in shown.hint
    changed = await say(core, "/map product=order")
    assert "product = order" in changed.text
    wrong = await say(core, "/map product=no_such_column")
    assert wrong.error


async def test_every_run_goes_to_the_run_log(core, engine):
    await say(core, "/top 2")
    await say(core, "/top 99")  # refused before running: not a run
    job = asyncio.create_task(core.handle_text(SHOP, "/top seconds=30"))
    while core.running_tool(SHOP) is None:
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.3)
    await say(core, "/cancel")
    await job
    with engine.connect() as connection:
        rows = connection.execute(
            select(run_log.c.chat_id, run_log.c.tool, run_log.c.params, run_log.c.outcome)
        ).all()
    assert [(row.chat_id, row.tool, row.outcome) for row in rows] == [
        (SHOP, "top", "ok"),
        (SHOP, "top", "cancelled"),
    ]
    assert rows[0].params == {"top": 2, "seconds": 0.0}
