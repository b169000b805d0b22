"""A third-party marketbot tool, as an outside package would ship it: `/rowcount`."""

from __future__ import annotations

from pydantic import Field

from storage.datasets import Dataset
from tools.base import BaseTool, Params, Report


class RowCountParams(Params):
    """Parameters of `/rowcount`."""

    at_least: int = Field(
        0, ge=0, le=1_000_000, description="say whether the dataset has at least this many rows"
    )


class RowCountTool(BaseTool):
    """Counts the rows of the active dataset."""

    name = "rowcount"
    summary = "How many rows the active dataset has"
    help = "Counts rows. Example: /rowcount 1000"
    params_model = RowCountParams
    positional = "at_least"
    phrases = ("count rows", "行数")

    def run(self, dataset: Dataset, params: Params) -> Report:
        assert isinstance(params, RowCountParams)
        rows = int(dataset.read_sql("SELECT COUNT(*) AS n FROM {table}").iloc[0, 0])
        verdict = "enough" if rows >= params.at_least else "too few"
        text = f"{rows:,} rows: {verdict} for {params.at_least:,}."
        return Report(title="Rows", text=text, facts={"rows": rows})
