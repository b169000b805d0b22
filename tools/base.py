"""The plugin contract: what a tool declares and the `Report` it returns.

A tool is a subclass of `BaseTool` made known through the `marketbot.tools` entry-point
group. It never imports `bot` or `telegram`: it reads a `Dataset` and returns a `Report`,
which each channel (Telegram, console, digests) renders in its own way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import pandas as pd
from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from storage.datasets import Dataset


@dataclass
class Table:
    """A table for the reply; the renderer decides how to fit it on a screen."""

    frame: pd.DataFrame
    caption: str = ""


@dataclass
class Chart:
    """A chart as PNG bytes."""

    png: bytes
    caption: str = ""


@dataclass
class Attachment:
    """A file to send along, such as a CSV of every row behind a table."""

    filename: str
    data: bytes
    caption: str = ""


@dataclass
class Followup:
    """A suggested next command, shown as a button where the channel has buttons."""

    label: str
    command: str


@dataclass
class Report:
    """What a tool answers: plain text (never markup), tables, charts, files and key facts.

    `facts` holds a few named figures (revenue, number of rules, chosen k, ...) that digests
    and other tools can read without parsing text.
    """

    title: str
    text: str = ""
    tables: list[Table] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    files: list[Attachment] = field(default_factory=list)
    facts: dict[str, float | int | str] = field(default_factory=dict)
    followups: list[Followup] = field(default_factory=list)


class Params(BaseModel):
    """Base of every tool's parameter model: typed, with defaults, ranges and descriptions."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class BaseTool:
    """Base class of analysis tools.

    Subclasses set the class attributes and implement `run`. The registry instantiates a
    tool with no arguments.
    """

    #: Command name, lowercase, as typed after the slash: `segment` for `/segment`.
    name: ClassVar[str]
    #: One line for `/help` and Telegram's command menu (under 256 characters).
    summary: ClassVar[str]
    #: Longer help shown by `/help NAME`, with at least one example.
    help: ClassVar[str] = ""
    #: The parameter model; its fields' descriptions are the per-parameter help.
    params_model: ClassVar[type[Params]] = Params
    #: A bare word after the command fills this parameter (`/segment 5` -> k=5).
    positional: ClassVar[str | None] = None
    #: Column roles the dataset must have, checked before `run`.
    roles: ClassVar[tuple[str, ...]] = ()
    #: Words and phrases (English and Chinese) that route a plain sentence to this tool.
    phrases: ClassVar[tuple[str, ...]] = ()
    #: Whether the tool reads a dataset at all; `run` gets None for `dataset` when not.
    needs_dataset: ClassVar[bool] = True

    def run(self, dataset: Dataset, params: Params) -> Report:
        raise NotImplementedError

    @classmethod
    def usage(cls) -> str:
        """One usage line, such as `/segment [k=auto] [since=DATE] ...`."""
        parts = [f"/{cls.name}"]
        for field_name, info in cls.params_model.model_fields.items():
            default = info.get_default(call_default_factory=True)
            shown = "" if default is None else str(default)
            parts.append(f"[{field_name}={shown or '…'}]")
        return " ".join(parts)
