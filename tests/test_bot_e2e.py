"""End to end: the real `marketbot run` against a fake Bot API server, played like a user.

One bot process serves every scenario in this module (starting it costs seconds); each
scenario uses its own chat ids, so they do not see each other's data.
"""

from __future__ import annotations

import io
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import matplotlib.image
import pandas as pd
import pytest
from fake_telegram import (
    BOT_USERNAME,
    TOKEN,
    Call,
    FakeTelegram,
    png_size,
    post_update,
    start_marketbot,
)

from storage.demo import write_demo_csv

OWNER = 42
TEAMMATE = 43
STRANGER = 7
GROUP = -100200300
MAX_UPLOAD_MB = 5
SETTLE_S = 0.4

pytestmark = pytest.mark.filterwarnings("error")


class Bot:
    """The bot process and the fake server it talks to."""

    def __init__(self, fake: FakeTelegram, process: subprocess.Popen, log_path: Path) -> None:
        self.fake = fake
        self.process = process
        self.log_path = log_path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def exchange(
        self,
        chat_id: int,
        act: Callable[[], object],
        *,
        done: Callable[[Call], bool] | None = None,
    ) -> list[Call]:
        """Do something as a user; return what the bot sent to the chat in answer.

        Waits for the first answer that is not a chat action or a status message (or for
        one matching `done`), then until the bot has been quiet for a moment.
        """
        start = self.fake.mark()
        act()
        done = done or _is_answer
        self.fake.wait_for(lambda call: call.chat_id == chat_id and done(call), after=start)
        seen = -1
        while seen != self.fake.mark():
            seen = self.fake.mark()
            time.sleep(SETTLE_S)
        return [
            call
            for call in self.fake.calls[start:]
            if call.chat_id == chat_id and call.method != "sendChatAction"
        ]

    def say(self, chat_id: int, text: str, **options: object) -> list[Call]:
        user_id = options.pop("user_id", chat_id if chat_id > 0 else OWNER)
        return self.exchange(
            chat_id, lambda: self.fake.send_text(chat_id, text, user_id=user_id, **options)
        )


def _is_answer(call: Call) -> bool:
    if call.method in {"sendChatAction", "download", "getFile", "answerCallbackQuery"}:
        return False
    return "Working…" not in call.text


def texts(calls: list[Call]) -> str:
    return "\n".join(
        call.text for call in calls if call.method in {"sendMessage", "editMessageText"}
    )


def documents(calls: list[Call]) -> dict[str, bytes]:
    return dict(call.files["document"] for call in calls if call.method == "sendDocument")


def pngs(calls: list[Call]) -> list[bytes]:
    images = []
    for call in calls:
        if call.method in {"sendPhoto", "sendMediaGroup"}:
            images.extend(data for _, data in call.files.values())
    return images


def buttons(calls: list[Call]) -> dict[str, str]:
    return {label: data for call in calls for label, data in call.buttons()}


@pytest.fixture(scope="module")
def orders_csv(tmp_path_factory) -> Path:
    return write_demo_csv(tmp_path_factory.mktemp("data") / "orders.csv", rows=10_000, seed=3)


@pytest.fixture(scope="module")
def bot(tmp_path_factory) -> Iterator[Bot]:
    home = tmp_path_factory.mktemp("bot")
    with FakeTelegram() as fake:
        process = start_marketbot(
            fake,
            home,
            ALLOWED_USER_IDS=f"{OWNER},{TEAMMATE}",
            MARKETBOT_MAX_UPLOAD_MB=str(MAX_UPLOAD_MB),
            MARKETBOT_LOG_LEVEL="INFO",
            MARKETBOT_WORKERS="2",
        )
        running = Bot(fake, process, home / "bot.log")
        try:
            fake.wait_for(lambda call: call.method == "setMyCommands", timeout=60)
            yield running
        finally:
            stop(process)


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        raise


@pytest.fixture(scope="module")
def shop(bot, orders_csv) -> Bot:
    """The bot with the owner's order export uploaded."""
    calls = bot.exchange(
        OWNER,
        lambda: bot.fake.send_document(OWNER, "orders.csv", orders_csv.read_bytes()),
        done=lambda call: "rows" in call.text and "Working…" not in call.text,
    )
    assert "⚠️" not in texts(calls), texts(calls)
    return bot


# Start-up ----------------------------------------------------------------------------------


def test_start_up_registers_the_command_menu_from_the_registry(bot):
    [menu] = bot.fake.calls_to("setMyCommands")
    names = [command["command"] for command in menu.params["commands"]]
    assert {"help", "datasets", "forget", "describe", "segment", "rules"} <= set(names)


# Uploads -----------------------------------------------------------------------------------


def test_upload_is_answered_with_what_was_stored(shop):
    calls = shop.fake.calls_to("download")
    assert calls, "the bot downloaded the file"
    listing = texts(shop.say(OWNER, "/datasets"))
    assert "orders" in listing and "(active)" in listing


def test_a_file_over_the_limit_is_refused_before_download(bot):
    downloads = len(bot.fake.calls_to("download"))
    calls = bot.exchange(
        TEAMMATE,
        lambda: bot.fake.send_document(
            TEAMMATE, "huge.csv", b"a,b\n1,2\n", file_size=(MAX_UPLOAD_MB + 1) * 1024 * 1024
        ),
    )
    answer = texts(calls)
    assert f"the limit is {MAX_UPLOAD_MB:.1f} MB" in answer
    assert "MARKETBOT_MAX_UPLOAD_MB" in answer
    assert len(bot.fake.calls_to("download")) == downloads


def test_a_bad_file_gets_a_specific_answer_and_stores_nothing(bot):
    image = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 20
    calls = bot.exchange(
        TEAMMATE, lambda: bot.fake.send_document(TEAMMATE, "orders.csv", image, user_id=TEAMMATE)
    )
    assert "⚠️" in texts(calls)
    assert "no data yet" in texts(bot.say(TEAMMATE, "/datasets"))


# Tools -------------------------------------------------------------------------------------


def test_describe_answers_with_text_and_a_chart(shop):
    calls = shop.say(OWNER, "/describe")
    answer = texts(calls)
    assert "<b>" in answer and "⚠️" not in answer
    images = pngs(calls)
    assert images, "a chart came with the description"
    picture = matplotlib.image.imread(io.BytesIO(images[0]), format="png")
    assert picture.shape[0] > 100 and picture.shape[1] > 100


def test_segment_answers_with_a_table_charts_and_a_csv_button(shop):
    calls = shop.say(OWNER, "/segment 3")
    answer = texts(calls)
    # The segment table is too wide for a phone, so it comes as one card per segment.
    assert answer.count("customers <b>") == 3 and "⚠️" not in answer
    assert "revenue <b>" in answer
    for image in pngs(calls):
        width, height = png_size(image)
        assert width >= 300 and height >= 200
    assert "Download CSV" in buttons(calls)

    # Pressing the button sends the table as a CSV document.
    message = next(call for call in calls if "Download CSV" in dict(call.buttons()))
    message_id = _message_id(message)
    pressed = shop.exchange(
        OWNER,
        lambda: shop.fake.press_button(OWNER, message_id, "/export csv", user_id=OWNER),
        done=lambda call: call.method == "sendDocument",
    )
    [(name, data)] = documents(pressed).items()
    frame = pd.read_csv(io.BytesIO(data), encoding="utf-8-sig")
    assert name.startswith("segment") and len(frame) >= 3
    assert shop.fake.calls_to("answerCallbackQuery")


def test_a_plain_sentence_runs_the_right_tool(shop):
    answer = texts(shop.say(OWNER, "who are my best customers?"))
    assert "customers <b>" in answer and "⚠️" not in answer


def test_a_long_job_in_one_chat_does_not_hold_up_help_in_another(shop):
    start = shop.fake.mark()
    shop.fake.send_text(OWNER, "/segment k=auto", user_id=OWNER)
    helped = shop.say(TEAMMATE, "/help")
    assert "/segment" in texts(helped)

    result = shop.fake.wait_for(
        lambda call: call.chat_id == OWNER and call.method in {"sendPhoto", "sendMediaGroup"},
        after=start,
        timeout=60,
    )
    answered = next(call for call in helped if call.method == "sendMessage")
    calls = shop.fake.calls
    assert calls.index(answered) < calls.index(result)


def test_a_bad_parameter_gets_the_usage_line(shop):
    answer = texts(shop.say(OWNER, "/segment k=99"))
    assert "⚠️ Bad value for k" in answer
    assert "Usage: /segment" in answer


def test_an_unknown_command_suggests_the_closest(shop):
    answer = texts(shop.say(OWNER, "/segmnt"))
    assert "Did you mean /segment?" in answer


def test_a_long_table_is_cut_for_the_phone_and_sent_whole_as_csv(shop):
    calls = shop.say(OWNER, "/rules min_support=0.002 max_len=2 top=50")
    answer = texts(calls)
    assert "⚠️" not in answer, answer
    assert "more rows in the file" in answer
    files = documents(calls)
    assert files, "the whole table came as a CSV"
    frame = pd.read_csv(io.BytesIO(next(iter(files.values()))), encoding="utf-8-sig")
    assert len(frame) > 15
    for block in answer.split("<pre>")[1:]:
        for line in block.split("</pre>")[0].splitlines():
            assert len(line) <= 60  # about 40 columns; Chinese names count double


# Groups and access -------------------------------------------------------------------------


def test_in_a_group_the_dataset_belongs_to_the_group(shop, orders_csv):
    no_data = texts(shop.say(GROUP, f"/segment@{BOT_USERNAME} 3", user_id=TEAMMATE))
    assert "no data yet" in no_data

    upload = shop.exchange(
        GROUP,
        lambda: shop.fake.send_document(
            GROUP,
            "team.csv",
            orders_csv.read_bytes(),
            caption=f"@{BOT_USERNAME} name=team",
            user_id=TEAMMATE,
        ),
        done=lambda call: "rows" in call.text and "Working…" not in call.text,
    )
    assert "⚠️" not in texts(upload)
    answer = texts(shop.say(GROUP, f"/segment@{BOT_USERNAME} 3", user_id=TEAMMATE))
    assert answer.count("customers <b>") == 3
    assert "team" in texts(shop.say(GROUP, "/datasets", user_id=TEAMMATE))
    assert "team" not in texts(shop.say(OWNER, "/datasets"))


def test_commands_for_another_bot_are_ignored(bot):
    start = bot.fake.mark()
    bot.fake.send_text(GROUP, "/help@SomeOtherBot", user_id=OWNER)
    bot.say(GROUP, "/help", user_id=OWNER)  # an answered command after it, in order
    answers = [call for call in bot.fake.calls[start:] if call.method == "sendMessage"]
    assert len(answers) == 1


def test_an_unknown_user_learns_their_id_and_nothing_else(shop):
    calls = shop.say(STRANGER, "/datasets")
    assert [call.method for call in calls] == ["sendMessage"]
    assert f"Your user id is {STRANGER}" in calls[0].text
    assert "orders" not in calls[0].text
    start = shop.fake.mark()
    shop.fake.press_button(STRANGER, 1, "/forget", user_id=STRANGER)
    alert = shop.fake.wait_for(lambda call: call.method == "answerCallbackQuery", after=start)
    assert f"Your user id is {STRANGER}" in alert.text and alert.params["show_alert"] is True
    time.sleep(SETTLE_S)
    assert not [call for call in shop.fake.calls[start:] if call.chat_id == STRANGER]


# Robustness --------------------------------------------------------------------------------


def test_flood_control_delays_the_reply_instead_of_losing_it(bot):
    bot.fake.fail_next("sendMessage", retry_after=1)
    calls = bot.exchange(
        TEAMMATE,
        lambda: bot.fake.send_text(TEAMMATE, "/help", user_id=TEAMMATE),
        done=lambda call: call.method == "sendMessage" and call.status == 200,
    )
    refused, delivered = calls[0], calls[-1]
    assert refused.status == 429 and delivered.status == 200
    assert "/help" in delivered.text
    assert delivered.at - refused.at >= 1.0


def test_forget_asks_first_and_the_button_deletes(bot, orders_csv):
    bot.exchange(
        TEAMMATE,
        lambda: bot.fake.send_document(TEAMMATE, "mine.csv", orders_csv.read_bytes()),
        done=lambda call: "rows" in call.text and "Working…" not in call.text,
    )
    ask = bot.say(TEAMMATE, "/forget")
    choices = buttons(ask)
    assert set(choices) == {"Yes, delete everything", "No, keep it"}
    message_id = _message_id(ask[-1])
    done = bot.exchange(
        TEAMMATE,
        lambda: bot.fake.press_button(
            TEAMMATE, message_id, choices["Yes, delete everything"], user_id=TEAMMATE
        ),
        done=lambda call: "Deleted" in call.text,
    )
    assert "Deleted 1 dataset(s)" in texts(done)
    assert any(call.method == "editMessageReplyMarkup" for call in done)
    assert "no data yet" in texts(bot.say(TEAMMATE, "/datasets"))


def test_a_failing_update_is_logged_with_a_reference_and_the_bot_keeps_serving(bot):
    bot.fake.fail_next("sendMessage", error_code=400)
    calls = bot.exchange(
        TEAMMATE,
        lambda: bot.fake.send_text(TEAMMATE, "/help", user_id=TEAMMATE),
        done=lambda call: "something went wrong" in call.text,
    )
    apology = texts(calls)
    reference = apology.split("(ref ")[1].split(")")[0]
    assert len(reference) == 6
    log = bot.log()
    assert f"update failed ref={reference} chat={TEAMMATE}" in log
    assert "Traceback" in log.split(f"ref={reference}")[1]
    assert "/help" in texts(bot.say(TEAMMATE, "/help"))


def test_the_log_has_one_line_per_job_and_never_the_token(shop):
    log = shop.log()
    assert TOKEN not in log and TOKEN.split(":")[1] not in log
    assert f"tool=segment chat={OWNER} rows=" in log
    # Every traceback belongs to an update failure with a reference.
    assert log.count("Traceback") == log.count("update failed ref=")


def _message_id(call: Call) -> int:
    """The id of the message a call sent or edited, as the fake server assigned it."""
    assert call.message_id is not None
    return call.message_id


# Webhook mode ------------------------------------------------------------------------------


def test_webhook_mode_answers_pushed_updates_and_refuses_forged_ones(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/telegram"
    with FakeTelegram() as fake:
        process = start_marketbot(
            fake, tmp_path, "--webhook", url, "--port", str(port), ALLOWED_USER_IDS=str(OWNER)
        )
        try:
            registered = fake.wait_for(lambda call: call.method == "setWebhook", timeout=60)
            assert registered.params["url"] == url
            secret = registered.params["secret_token"]
            assert len(secret) >= 32

            # An update without the secret is refused and never answered.
            forged = {"update_id": 999, "message": {"message_id": 1, "date": 0, "text": "/help",
                      "chat": {"id": OWNER, "type": "private"},
                      "from": {"id": OWNER, "is_bot": False, "first_name": "Eve"}}}  # fmt: skip
            assert post_update(url, forged, secret="wrong") == 403

            mark = fake.mark()
            fake.send_text(OWNER, "/help")
            answer = fake.wait_for(
                lambda call: call.method == "sendMessage" and call.chat_id == OWNER, after=mark
            )
            assert "/segment" in answer.text
            assert len(fake.calls_to("sendMessage", chat_id=OWNER)) == 1
        finally:
            stop(process)
