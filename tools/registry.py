"""The tool registry: every tool, built-in or third-party, comes from one entry-point group."""

from __future__ import annotations

import difflib
import logging
from collections.abc import Iterator
from importlib.metadata import entry_points

from storage.errors import UnknownToolError
from tools.base import BaseTool

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "marketbot.tools"


class Registry:
    """Tools by command name."""

    def __init__(self, tools: list[BaseTool] | None = None) -> None:
        self._tools: dict[str, BaseTool] = {}
        for tool in tools or []:
            self.add(tool)

    def add(self, tool: BaseTool) -> None:
        if tool.name in self._tools:
            raise ValueError(f"two tools are named {tool.name!r}")
        self._tools[tool.name] = tool

    def get(self, name: str) -> BaseTool:
        try:
            return self._tools[name.lower()]
        except KeyError:
            close = difflib.get_close_matches(name.lower(), list(self._tools), n=1)
            hint = f"Did you mean /{close[0]}?" if close else "Send /help for the list."
            raise UnknownToolError(f"There is no tool called '{name}'.", hint=hint) from None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._tools

    def __iter__(self) -> Iterator[BaseTool]:
        return iter(sorted(self._tools.values(), key=lambda tool: tool.name))

    def __len__(self) -> int:
        return len(self._tools)


def load_registry() -> Registry:
    """Load every tool registered under the `marketbot.tools` entry-point group.

    A plugin that fails to import is logged and skipped, so one broken plugin does not
    take the bot down.
    """
    registry = Registry()
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            tool_class = entry.load()
            registry.add(tool_class())
        except Exception:
            log.exception("could not load tool plugin %s (%s)", entry.name, entry.value)
    return registry
