"""What the chat core answers, before any channel turns it into messages."""

from __future__ import annotations

from dataclasses import dataclass, field

from tools.base import Attachment, Report


@dataclass(frozen=True)
class Button:
    """A suggested action; pressing it is the same as typing `command`."""

    label: str
    command: str


@dataclass
class Reply:
    """A channel-neutral answer: plain text (never markup), an optional report and buttons.

    Renderers escape every string in here: text, hints, report titles and table cells all may
    carry what a user typed or uploaded.
    """

    text: str = ""
    hint: str = ""
    report: Report | None = None
    buttons: list[Button] = field(default_factory=list)
    files: list[Attachment] = field(default_factory=list)
    error: bool = False
    #: The tool that made the report, used to name files (`segment-1.csv`).
    tool: str = ""
