"""Turn a line of chat into a built-in command or a tool call.

Commands (`/rules min_support=0.01 top=10`, `/segment 5`, `/segment@ShopBot` in groups) and
plain sentences in English or Chinese ("what do people buy with tea?", "哪些商品经常一起买?")
end as the same `ToolRequest`. Sentences are matched against the `phrases` each tool
declares, so a plugin is routed as soon as it is registered, without touching `bot/`.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

from storage.errors import BadParameterError, UnknownToolError
from tools.base import BaseTool, Params
from tools.params import parse_params, split_words
from tools.registry import Registry

#: Commands the chat core answers itself; a tool cannot take these names.
BUILTINS = ("start", "help", "datasets", "use", "map", "export", "cancel", "forget")

#: Words that pick a dataset for one call (`/segment dataset=spring`) rather than a parameter.
DATASET_KEYS = ("dataset", "ds")

_COMMAND = re.compile(r"^/(?P<name>[A-Za-z0-9_]{1,64})(?:@(?P<bot>[A-Za-z0-9_]+))?(?:\s+|$)")

# "buy with tea", "goes well with green tea", "bought together with 奶茶".
_ITEM_EN = re.compile(
    r"\b(?:buy|buys|bought|purchase|purchased|get|gets|got|order|ordered|go|goes|sell|sells|"
    r"sold|pair|pairs|paired)\s+(?:well\s+|together\s+|along\s+)?with\s+"
    r"(?:the\s+|a\s+|an\s+|some\s+|my\s+|our\s+)?(?P<item>.+?)\s*[?？!！.。]*\s*$",
    re.IGNORECASE,
)
# "和奶茶一起买", "跟绿茶一起卖", "与咖啡搭配", "买了咖啡的人还买什么".
_ITEM_ZH = re.compile(r"(?:[和跟与同](?P<item>.+?)(?:一起|一块|搭配))|(?:买了?(?P<item2>.+?)的人)")
_QUOTES = "\"'“”‘’「」『』《》"


@dataclass(frozen=True)
class Command:
    """A built-in command such as `/help rules` or `/use spring`."""

    name: str
    args: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ToolRequest:
    """A tool to run with validated parameters, on a named dataset or the active one."""

    tool: BaseTool
    params: Params
    dataset: str | None = None

    @property
    def command(self) -> str:
        """The request written back as a command, for logs and buttons."""
        given = self.params.model_dump(exclude_defaults=True)
        words = [f"/{self.tool.name}"] + [
            f"{key}={quote_word(value)}" for key, value in given.items()
        ]
        if self.dataset:
            words.append(f"dataset={quote_word(self.dataset)}")
        return " ".join(words)


@dataclass(frozen=True)
class NotUnderstood:
    """A sentence that matches no tool."""

    text: str


@dataclass(frozen=True)
class NotForUs:
    """A command addressed to another bot in a group (`/help@OtherBot`), or an empty line."""


Route = Command | ToolRequest | NotUnderstood | NotForUs


def route(text: str, registry: Registry, *, bot_username: str | None = None) -> Route:
    """Route one line; raises `UnknownToolError` or `BadParameterError` with the usage line."""
    line = text.strip()
    if not line:
        return NotForUs()
    match = _COMMAND.match(line)
    if match is None:
        if line.startswith("/"):
            raise UnknownToolError(
                f"'{line.split()[0]}' is not a command I know.", hint="Send /help for the list."
            )
        return route_sentence(line, registry)

    addressed = match.group("bot")
    if addressed and bot_username and addressed.lower() != bot_username.lower():
        return NotForUs()
    name = match.group("name").lower()
    words = split_words(line[match.end() :])
    if name in BUILTINS:
        return Command(name, words)
    tool = _find_tool(name, registry)
    dataset, words = _pop_dataset(tool, words)
    return ToolRequest(tool, parse_params(tool, words), dataset)


def route_sentence(sentence: str, registry: Registry) -> ToolRequest | NotUnderstood:
    """Route a plain sentence by the tools' phrases, taking an item from "buy with X"."""
    lowered = sentence.lower()
    item = extract_item(sentence)
    scored = [(_phrase_score(tool, lowered), tool) for tool in registry]
    scored = [(score, tool) for score, tool in scored if score > 0]
    if item is not None:
        # "what goes with tea" asks for a tool that takes an item, even without its phrases.
        with_item = [(score, tool) for score, tool in scored if _takes_item(tool)]
        if with_item or not scored:
            scored = with_item or [(1, tool) for tool in registry if _takes_item(tool)]
    if not scored:
        return NotUnderstood(sentence)

    tool = max(scored, key=lambda pair: (pair[0], pair[1].name == "rules"))[1]
    words = [f"item={item}"] if item is not None and _takes_item(tool) else []
    return ToolRequest(tool, parse_params(tool, words))


def extract_item(sentence: str) -> str | None:
    """The product named in "buy with X", "goes with X" or "和X一起买", if any."""
    match = _ITEM_EN.search(sentence)
    if match:
        item = match.group("item")
    else:
        match = _ITEM_ZH.search(sentence)
        if match is None:
            return None
        item = match.group("item") or match.group("item2")
    item = item.strip().strip(_QUOTES).strip()
    item = re.sub(r"(?:\s+(?:together|too|as well))+$", "", item, flags=re.IGNORECASE)
    item = re.sub(r"(?:[?？!！.。,，]|吗|呢|的?商品|东西)+$", "", item).strip().strip(_QUOTES)
    return item or None


def command_names(registry: Registry) -> list[str]:
    """Every command a user can type: built-ins first, then the tools."""
    return list(BUILTINS) + [tool.name for tool in registry if tool.name not in BUILTINS]


def _find_tool(name: str, registry: Registry) -> BaseTool:
    if name in registry:
        return registry.get(name)
    close = difflib.get_close_matches(name, command_names(registry), n=1)
    hint = f"Did you mean /{close[0]}?" if close else "Send /help for the list."
    raise UnknownToolError(f"There is no command /{name}.", hint=hint)


def _pop_dataset(tool: BaseTool, words: list[str]) -> tuple[str | None, list[str]]:
    """Take `dataset=NAME` out of the words, unless the tool has a parameter by that name."""
    fields = tool.params_model.model_fields
    dataset = None
    rest = []
    for word in words:
        key, sep, value = word.partition("=")
        if sep and key.lower() in DATASET_KEYS and key.lower() not in fields:
            if not value.strip():
                raise BadParameterError("dataset= needs a name.", hint="Send /datasets for yours.")
            dataset = value.strip()
        else:
            rest.append(word)
    return dataset, rest


def _phrase_score(tool: BaseTool, lowered: str) -> int:
    """The length of the longest of the tool's phrases found in the sentence, or 0."""
    best = 0
    for phrase in (*tool.phrases, tool.name):
        phrase = phrase.lower().strip()
        if phrase and len(phrase) > best and _contains(lowered, phrase):
            best = len(phrase)
    return best


def _contains(lowered: str, phrase: str) -> bool:
    if not phrase.isascii():
        return phrase in lowered
    # Whole words only, so "tea" does not match "steak"; a trailing plural "s" is allowed.
    return re.search(rf"(?<!\w){re.escape(phrase)}s?(?!\w)", lowered) is not None


def _takes_item(tool: BaseTool) -> bool:
    return "item" in tool.params_model.model_fields


def quote_word(value: object) -> str:
    """A value as one command word: quoted when it has spaces (`item="green tea"`)."""
    text = str(value)
    return f'"{text}"' if any(char.isspace() for char in text) else text
