"""The marketbot exception family.

Every message is written for the person in the chat: it says what was wrong and how to fix
it, and is safe to show as is (the renderer escapes it).

    MarketbotError
    ├── BadFileError            an upload that cannot be stored
    │   └── FileTooLargeError   over the size or row limit, refused before reading
    ├── BadParameterError       a tool parameter out of range, unknown or malformed
    ├── UnknownToolError        a command that names no tool
    ├── MissingRoleError        the dataset lacks a column role the tool needs
    ├── EmptyDataError          nothing left to analyse (no rows, no baskets, ...)
    ├── DatasetNotFoundError    no dataset by that name in this chat
    ├── MemoryBudgetError       the job would not fit the memory budget
    └── ToolTimeoutError        the job ran past the time limit or was cancelled
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class MarketbotError(Exception):
    """Base of all errors whose message can be shown to the user."""

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n{self.hint}" if self.hint else self.message

    def __reduce__(self) -> tuple[Callable[..., MarketbotError], tuple[Any, ...]]:
        # Errors cross process boundaries (tools run in worker processes); rebuild them from
        # their message and hint rather than from subclass-specific constructor arguments.
        return _rebuild, (type(self), self.message, self.hint, dict(self.__dict__))


def _rebuild(
    cls: type[MarketbotError], message: str, hint: str, state: dict[str, Any]
) -> MarketbotError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class BadFileError(MarketbotError):
    """An uploaded file that cannot be stored; nothing of it was kept."""


class FileTooLargeError(BadFileError):
    """A file over the configured size or row limit."""


class BadParameterError(MarketbotError):
    """A tool parameter that is unknown, malformed or out of range."""


class UnknownToolError(MarketbotError):
    """A command or sentence that matches no tool."""


class MissingRoleError(MarketbotError):
    """The dataset has no column for a role the tool needs."""

    def __init__(self, role: str, *, tool: str = "", hint: str = "") -> None:
        who = f"/{tool} needs" if tool else "This needs"
        message = f"{who} a '{role}' column, and this dataset has none mapped."
        super().__init__(message, hint=hint or f"Map one with /map {role}=<column name>.")
        self.role = role


class EmptyDataError(MarketbotError):
    """Nothing left to analyse after filtering."""


class DatasetNotFoundError(MarketbotError):
    """No dataset by that name (or none at all) in this chat."""


class MemoryBudgetError(MarketbotError):
    """The job would need more memory than the configured budget."""


class ToolTimeoutError(MarketbotError):
    """The job ran past its time limit or was cancelled."""
