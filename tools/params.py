"""Turn the words after a command into a tool's typed parameters."""

from __future__ import annotations

import difflib
import shlex

from pydantic import ValidationError

from storage.errors import BadParameterError
from tools.base import BaseTool, Params


def split_words(text: str) -> list[str]:
    """Split a command's argument text, keeping quoted values (`item="green tea"`) whole."""
    try:
        return shlex.split(text)
    except ValueError:
        return text.split()


def parse_params(tool: BaseTool, words: list[str]) -> Params:
    """Parse `key=value` words (and one bare word for the positional parameter)."""
    model = tool.params_model
    fields = model.model_fields
    values: dict[str, str] = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep:
            key, value = tool.positional or "", word
            if not key:
                raise BadParameterError(
                    f"/{tool.name} takes no bare value, but got '{word}'.", hint=_usage(tool)
                )
        key = key.strip().lower().replace("-", "_")
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            suggestion = f" Did you mean {close[0]}=?" if close else ""
            raise BadParameterError(
                f"/{tool.name} has no parameter '{key}'.{suggestion}", hint=_usage(tool)
            )
        if key in values:
            raise BadParameterError(f"'{key}' is given twice.", hint=_usage(tool))
        values[key] = value.strip()
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise BadParameterError(_explain(tool, exc), hint=_usage(tool)) from None


def _explain(tool: BaseTool, exc: ValidationError) -> str:
    error = exc.errors()[0]
    name = str(error["loc"][0]) if error["loc"] else "?"
    given = error.get("input")
    info = tool.params_model.model_fields.get(name)
    allowed = describe_allowed(tool.params_model, name)
    message = f"Bad value for {name}"
    if given is not None and not isinstance(given, dict):
        message += f": '{given}'"
    message += "."
    if allowed:
        message += f" Allowed: {allowed}."
    elif error.get("msg"):
        message += f" {error['msg']}."
    if info is not None and info.description:
        message += f" ({info.description})"
    return message


def describe_allowed(model: type[Params], name: str) -> str:
    """Describe a parameter's allowed values from its type and constraints."""
    schema = model.model_json_schema()["properties"].get(name, {})
    return _describe_schema(schema)


def _describe_schema(schema: dict) -> str:
    if "enum" in schema:
        return ", ".join(str(choice) for choice in schema["enum"])
    if "const" in schema:
        return str(schema["const"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            parts = [_describe_schema(option) for option in schema[key]]
            return " or ".join(part for part in parts if part)
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    kind = {"integer": "a whole number", "number": "a number"}.get(schema.get("type", ""), "")
    if low is not None or high is not None:
        left = "[" if "minimum" in schema else "("
        right = "]" if "maximum" in schema else ")"
        low_text = "" if low is None else f"{low:g}"
        high_text = "" if high is None else f"{high:g}"
        return f"{kind} in {left}{low_text}, {high_text}{right}".strip()
    if schema.get("format") == "date":
        return "a date like 2024-03-31"
    return kind


def _usage(tool: BaseTool) -> str:
    return f"Usage: {tool.usage()}"
