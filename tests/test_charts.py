"""The shared chart style: valid PNGs of the promised size, Chinese labels drawn."""

from __future__ import annotations

import io
import threading

import pytest
from matplotlib.image import imread

from tools import charts


def decoded_size(png: bytes) -> tuple[int, int]:
    """Width and height of a PNG after decoding it (fails on a broken file)."""
    pixels = imread(io.BytesIO(png), format="png")
    height, width = pixels.shape[:2]
    return width, height


def test_bundled_cjk_font_is_found() -> None:
    assert charts.cjk_font_path() is not None
    assert charts.cjk_family() == "Noto Sans SC"


def test_bar_chart_with_chinese_labels_draws_without_missing_glyphs() -> None:
    # Warnings are errors in this test run, so a missing glyph would fail here.
    png = charts.bar_chart(
        ["绿茶 green tea", "乌龙茶", "白色陶瓷杯 (大号)", "Café crème"],
        [1200.5, 830, 410, -15],
        title="销量最高的商品 Top products",
        xlabel="收入 revenue",
        horizontal=True,
    )
    assert png.startswith(b"\x89PNG")
    assert decoded_size(png) == charts.SIZE


@pytest.mark.parametrize("size", [(1200, 800), (800, 800), (1280, 640)], ids=str)
def test_scatter_has_requested_pixel_size(size: tuple[int, int]) -> None:
    png = charts.scatter(
        [1, 2, 3, 40],
        [10, 200, 3000, 40000],
        groups=["冠军客户", "Lost", "冠军客户", "Lost"],
        title="Recency vs spend",
        log_y=True,
        size=size,
    )
    assert decoded_size(png) == size


def test_vertical_bars_with_many_labels() -> None:
    months = [f"2024-{month:02d}" for month in range(1, 13)]
    png = charts.bar_chart(months, range(12), title="Revenue by month")
    assert decoded_size(png) == charts.SIZE


def test_new_figure_and_to_png_compose() -> None:
    figure = charts.new_figure("Two panels", size=(1200, 600))
    left, right = figure.subplots(1, 2)
    charts.draw_bars(left, ["a", "b"], [1, 2])
    charts.draw_scatter(right, [1, 2], [3, 4])
    assert decoded_size(charts.to_png(figure)) == (1200, 600)


def test_charts_render_from_several_threads_at_once() -> None:
    results: list[bytes] = []

    def draw(index: int) -> None:
        results.append(charts.bar_chart(["茶", "杯"], [index, index + 1], title=f"chart {index}"))

    threads = [threading.Thread(target=draw, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4
    assert all(decoded_size(png) == charts.SIZE for png in results)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0"),
        (950, "950"),
        (5_000, "5k"),
        (2_500, "2.5k"),
        (12_345, "12.3k"),
        (2_500_000, "2.5M"),
    ],
)
def test_thousands(value: float, text: str) -> None:
    assert charts.thousands(value) == text


def test_shorten_keeps_short_labels() -> None:
    assert charts.shorten("tea") == "tea"
    assert charts.shorten("x" * 40, 10) == "x" * 9 + "…"
