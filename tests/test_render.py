"""Rendering: escaping, table widths, numbers for people, message splitting, albums."""

from __future__ import annotations

import html
import io
from datetime import datetime
from html.parser import HTMLParser

import pandas as pd
import pytest

from bot.export import table_csv
from bot.render import (
    CAPTION_LIMIT,
    PHONE_WIDTH,
    TEXT_LIMIT,
    AlbumMessage,
    DocumentMessage,
    PhotoMessage,
    TextMessage,
    caption_html,
    display_width,
    fit_table,
    format_value,
    render_telegram,
    render_terminal,
    split_html,
    telegram_length,
)
from bot.reply import Button, Reply
from tools.base import Attachment, Chart, Report, Table

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


class _TagChecker(HTMLParser):
    """Collects visible text and fails on tags closed out of order or left open."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack}"
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def visible(markup: str) -> str:
    checker = _TagChecker()
    checker.feed(markup)
    checker.close()
    assert not checker.stack, f"unclosed tags {checker.stack}"
    return "".join(checker.text)


def texts(messages) -> list[str]:
    return [message.html for message in messages if isinstance(message, TextMessage)]


# Escaping ------------------------------------------------------------------------------------


def test_every_user_supplied_string_is_escaped():
    evil = '<script>alert("x")</script> & <b>'
    report = Report(
        title=evil,
        text=evil,
        tables=[Table(pd.DataFrame({evil: [evil], "n": [1]}), caption=evil)],
        charts=[Chart(PNG, caption=evil)],
        files=[Attachment("a.csv", b"x", caption=evil)],
    )
    reply = Reply(text=evil, hint=evil, report=report, buttons=[Button(evil, "/help")])
    messages = render_telegram(reply)
    markup = "".join(texts(messages))
    assert "<script>" not in markup and "&lt;script&gt;" in markup
    for message in messages:
        if isinstance(message, (PhotoMessage, DocumentMessage)):
            assert "<script>" not in message.caption
            visible(message.caption)
    for part in texts(messages):
        visible(part)  # well-formed: our own tags only, all balanced


def test_error_reply_shows_message_and_hint():
    reply = Reply(text="Bad value for k: '99'.", hint="Usage: /segment [k=auto]", error=True)
    [message] = render_telegram(reply)
    assert message.html == "⚠️ Bad value for k: &#x27;99&#x27;.\n\n<i>Usage: /segment [k=auto]</i>"


# Numbers -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "column", "expected"),
    [
        (1234567, "orders", "1,234,567"),
        (1234.5, "revenue", "1,234.50"),
        (1234567.89, "revenue", "1,234,568"),
        (-12.5, "amount", "-12.50"),
        (0.0123, "support", "1.2%"),
        (0.5, "confidence", "50.0%"),
        (45.3, "share %", "45.3%"),
        (0.4, "missing %", "0.4%"),
        (2.345, "lift", "2.35"),
        (16.3, "avg orders", "16.3"),
        (0.01234, "score", "0.0123"),
        (float("nan"), "lift", "–"),
        (None, "name", "–"),
        (True, "returning", "yes"),
        (pd.Timestamp("2024-03-05"), "day", "2024-03-05"),
        (datetime(2024, 3, 5, 14, 2), "first order", "2024-03-05 14:02"),
        ("WHITE MUG", "product", "WHITE MUG"),
    ],
)
def test_numbers_for_people(value, column, expected):
    assert format_value(value, column=column) == expected


def test_currency_symbol_comes_from_the_report_facts():
    assert format_value(99.5, column="revenue", currency="€") == "€99.50"


# Tables --------------------------------------------------------------------------------------


def wide_frame(rows: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "product": [f"WHITE HANGING HEART T-LIGHT HOLDER no. {n}" for n in range(rows)],
            "中文名": ["珍珠奶茶大杯少糖去冰" for _ in range(rows)],
            "orders": [n * 1000 for n in range(rows)],
            "revenue": [n * 12345.678 for n in range(rows)],
            "support": [n / (rows + 1) for n in range(rows)],
        }
    )


def test_tables_fit_a_phone():
    fitted = fit_table(wide_frame(5))
    for line in fitted.text.splitlines():
        assert display_width(line) <= PHONE_WIDTH, line
    assert not fitted.complete


def test_chinese_characters_count_double():
    assert display_width("奶茶") == 4
    fitted = fit_table(pd.DataFrame({"名称": ["珍珠奶茶" * 10], "数量": [3]}))
    assert all(display_width(line) <= PHONE_WIDTH for line in fitted.text.splitlines())


def test_small_table_is_complete_and_numbers_align_right():
    fitted = fit_table(pd.DataFrame({"item": ["tea", "milk"], "orders": [5, 1200]}))
    assert fitted.complete
    assert fitted.text.splitlines() == ["item orders", "---- ------", "tea       5", "milk  1,200"]


def test_cut_tables_also_go_out_as_csv():
    report = Report(title="Rules", tables=[Table(wide_frame(40), caption="All rules")])
    messages = render_telegram(Reply(report=report, tool="rules"))
    [document] = [message for message in messages if isinstance(message, DocumentMessage)]
    assert document.filename == "rules-1.csv"
    frame = pd.read_csv(io.BytesIO(document.data), encoding="utf-8-sig")
    assert len(frame) == 40 and list(frame.columns) == list(wide_frame(1).columns)
    assert "25 more rows" in "".join(texts(messages))


def test_complete_tables_send_no_file():
    report = Report(title="Top", tables=[Table(pd.DataFrame({"item": ["tea"], "n": [1]}))])
    messages = render_telegram(Reply(report=report))
    assert not [message for message in messages if isinstance(message, DocumentMessage)]


def test_formula_like_cells_are_defused_in_csv():
    frame = pd.DataFrame({"product": ["=HYPERLINK(1)", "-5", "tea"]})
    text = table_csv(Table(frame)).decode("utf-8-sig")
    assert "'=HYPERLINK(1)" in text and "\n-5" in text


# Splitting -----------------------------------------------------------------------------------


def test_long_messages_split_under_the_limit_without_breaking_tags():
    rows = "\n".join(f"row {n} &lt;tag&gt; &amp; 奶茶 😀 " + "x" * 50 for n in range(400))
    markup = f"<b>Title</b>\n<pre>{rows}</pre>\n<i>the end</i>"
    pieces = split_html(markup)
    assert len(pieces) > 1
    assert all(telegram_length(piece) <= TEXT_LIMIT for piece in pieces)
    assert "".join(visible(piece) for piece in pieces).replace("\n", "") == visible(
        markup
    ).replace("\n", "")
    # Cuts fall at line ends: every piece of the table starts with a whole row.
    for piece in pieces[1:-1]:
        assert piece.startswith("<pre>row ")


def test_text_without_line_breaks_is_cut_at_spaces():
    words = " ".join(f"word{n}" for n in range(2000))
    pieces = split_html(f"<i>{words}</i>", limit=500)
    assert all(telegram_length(piece) <= 500 for piece in pieces)
    assert all(piece.startswith("<i>") and piece.endswith("</i>") for piece in pieces)
    assert " ".join(visible(piece).strip() for piece in pieces) == words


def test_report_with_many_tables_is_packed_into_few_messages():
    tables = [Table(pd.DataFrame({"item": ["tea"] * 15, "n": range(15)})) for _ in range(30)]
    messages = texts(render_telegram(Reply(report=Report(title="Many", tables=tables))))
    assert 1 < len(messages) < 10
    assert all(telegram_length(message) <= TEXT_LIMIT for message in messages)
    for message in messages:
        visible(message)


def test_captions_stay_under_the_limit_after_escaping():
    caption = caption_html("&" * 2000)
    assert telegram_length(caption) <= CAPTION_LIMIT
    assert html.unescape(caption).endswith("…")


# Charts, files and buttons -------------------------------------------------------------------


def test_several_charts_go_as_one_album():
    report = Report(title="x", charts=[Chart(PNG, caption=f"chart {n}") for n in range(3)])
    albums = [m for m in render_telegram(Reply(report=report)) if isinstance(m, AlbumMessage)]
    assert len(albums) == 1 and [photo.caption for photo in albums[0].photos] == [
        "chart 0",
        "chart 1",
        "chart 2",
    ]


def test_one_chart_is_a_photo_and_more_than_ten_make_two_albums():
    one = render_telegram(Reply(report=Report(title="x", charts=[Chart(PNG)])))
    assert any(isinstance(message, PhotoMessage) for message in one)
    many = render_telegram(Reply(report=Report(title="x", charts=[Chart(PNG)] * 12)))
    albums = [message for message in many if isinstance(message, AlbumMessage)]
    assert [len(album.photos) for album in albums] == [10, 2]


def test_buttons_go_on_the_last_text_message():
    tables = [Table(pd.DataFrame({"item": ["tea"] * 15, "n": range(15)})) for _ in range(30)]
    buttons = [Button("Download CSV", "/export csv")]
    messages = render_telegram(Reply(report=Report(title="x", tables=tables), buttons=buttons))
    text_messages = [message for message in messages if isinstance(message, TextMessage)]
    assert text_messages[-1].buttons == buttons
    assert all(not message.buttons for message in text_messages[:-1])


def test_terminal_render_saves_charts_and_prints_paths(tmp_path):
    report = Report(
        title="Segments",
        text="Four groups.",
        tables=[Table(pd.DataFrame({"segment": ["Champions"], "customers": [1200]}))],
        charts=[Chart(PNG, caption="sizes")],
    )
    reply = Reply(report=report, tool="segment", buttons=[Button("k=4", "/segment 4")])
    output = render_terminal(reply, out_dir=tmp_path)
    chart = tmp_path / "segment-chart1.png"
    assert chart.read_bytes() == PNG
    assert f"saved {chart}  (sizes)" in output
    assert "Champions     1,200" in output
    assert "[1] k=4  (/segment 4)" in output


def test_a_short_wide_table_becomes_one_card_per_row():
    frame = pd.DataFrame(
        {
            "segment": ["Champions", "<Lost>"],
            "customers": [136, 362],
            "share %": [16.9, 44.9],
            "avg recency (days)": [46, 423],
            "avg spend": [11492.0, 224.0],
            "revenue %": [76.7, 4.0],
        }
    )
    report = Report(title="Segments", tables=[Table(frame, caption="By revenue")])
    [message] = [m for m in render_telegram(Reply(report=report)) if isinstance(m, TextMessage)]
    assert "<pre>" not in message.html
    assert "<b>Champions</b>\ncustomers <b>136</b> · share <b>16.9%</b>" in message.html
    assert "avg spend <b>11,492</b> · revenue <b>76.7%</b>" in message.html
    assert "<b>&lt;Lost&gt;</b>" in message.html
    # Every value is there, so no CSV of the table is needed.
    assert not [m for m in render_telegram(Reply(report=report)) if isinstance(m, DocumentMessage)]


def test_ranked_cards_carry_the_rank_in_the_title():
    frame = pd.DataFrame(
        {
            "#": [1, 2],
            "rule": ["Bread -> Butter", "Eggs -> Bacon"],
            "support": [0.12, 0.05],
            "confidence": [0.6, 0.4],
            "lift": [3.1, 2.0],
            "leverage": [0.08, 0.02],
            "conviction": [2.0, 1.5],
            "count": [36, 15],
        }
    )
    html_text = "".join(
        m.html
        for m in render_telegram(Reply(report=Report(title="Rules", tables=[Table(frame)])))
        if isinstance(m, TextMessage)
    )
    assert "<b>1. Bread -&gt; Butter</b>\nsupport <b>12.0%</b>" in html_text
    assert "rule <b>" not in html_text
