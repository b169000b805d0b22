"""The conversation core shared by every channel: Telegram and the local console.

A channel hands in what the user did (a line of text, a file, a button press, which is a line
too) with the chat id, and gets back a channel-neutral `Reply`. Every lookup goes by chat
id, so one chat never sees another chat's datasets, results or pending confirmations.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from bot.export import report_files
from bot.reply import Button, Reply
from bot.router import (
    BUILTINS,
    Command,
    NotForUs,
    NotUnderstood,
    ToolRequest,
    quote_word,
    route,
)
from storage.datasets import (
    ROLES,
    DatasetInfo,
    delete_chat_data,
    get_dataset,
    list_datasets,
    set_active_dataset,
    utcnow,
)
from storage.errors import (
    BadParameterError,
    FileTooLargeError,
    MarketbotError,
    ToolTimeoutError,
)
from storage.ingest import ingest_path, parse_role_overrides
from storage.settings import Settings
from storage.store import log_run, open_store, remap_roles
from tools.base import Report
from tools.params import describe_allowed, split_words
from tools.registry import Registry
from tools.runner import ToolCall, ToolRunner

log = logging.getLogger(__name__)

#: Called with a short step description ("running /segment") while a request is worked on.
Progress = Callable[[str], Awaitable[None]]

FORGET_CONFIRM_SECONDS = 120
REMEMBERED_CHATS = 1000
MAX_DATASET_BUTTONS = 8

BUILTIN_HELP = {
    "start": "what this bot does and how to begin",
    "help": "this list; /help TOOL explains one tool",
    "datasets": "your uploaded datasets, with buttons to switch",
    "use": "switch the active dataset: /use NAME",
    "map": "fix a column role: /map product=Description",
    "export": "the last result as a file: /export csv or /export xlsx",
    "cancel": "stop the job that is running in this chat",
    "forget": "delete every dataset of this chat (asks first)",
}
EXAMPLE_QUESTIONS = (
    "what do people buy with tea?",
    "who are my best customers?",
    "哪些商品经常一起买?",
)


@dataclass
class _ChatState:
    """What the bot remembers about a chat between messages (in memory only)."""

    last_tool: str = ""
    last_report: Report | None = None
    forget_token: str = ""
    forget_until: float = 0.0


async def _no_progress(step: str) -> None:
    return None


class ChatCore:
    """Answers commands, sentences and uploads for any number of chats."""

    def __init__(
        self,
        settings: Settings,
        *,
        engine: Engine,
        registry: Registry,
        runner: ToolRunner,
        bot_username: str | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.registry = registry
        self.runner = runner
        self.bot_username = bot_username
        self._states: OrderedDict[int, _ChatState] = OrderedDict()
        self._running: dict[int, str] = {}  # chat id -> tool name
        self._cancelling: set[int] = set()  # chats whose job was stopped on purpose
        self._stopping = False
        self._ingest_pool: ProcessPoolExecutor | None = None

    # Entry points ----------------------------------------------------------------------

    async def handle_text(
        self,
        chat_id: int,
        text: str,
        *,
        user_id: int | None = None,
        progress: Progress | None = None,
    ) -> Reply | None:
        """Answer one line; None when the line is not for this bot (`/help@OtherBot`)."""
        try:
            routed = route(text, self.registry, bot_username=self.bot_username)
            if isinstance(routed, NotForUs):
                return None
            if isinstance(routed, NotUnderstood):
                return self._not_understood()
            if isinstance(routed, Command):
                return await self._builtin(chat_id, routed)
            return await self._run_tool(chat_id, user_id, routed, progress or _no_progress)
        except MarketbotError as exc:
            return error_reply(exc)

    async def handle_upload(
        self,
        chat_id: int,
        path: Path,
        *,
        caption: str = "",
        user_id: int | None = None,
        progress: Progress | None = None,
    ) -> Reply:
        """Store an uploaded file as a dataset of this chat and say what was stored."""
        progress = progress or _no_progress
        started = time.monotonic()
        outcome = "error"
        try:
            name, overrides = parse_caption(caption)
            await progress(f"reading {path.name}")
            lines, info = await self._ingest(path, chat_id=chat_id, name=name, overrides=overrides)
            outcome = "ok"
        except MarketbotError as exc:
            outcome = f"refused={type(exc).__name__}"
            return error_reply(exc)
        finally:
            log.info(
                "upload chat=%s user=%s took=%.1fs %s",
                chat_id,
                user_id,
                time.monotonic() - started,
                outcome,
            )
        return Reply(text="\n".join(lines), buttons=self._next_steps(info))

    def check_upload_size(self, size: int | None, *, channel_limit: int | None = None) -> None:
        """Refuse a file over the limit before it is downloaded; the error says how to lift it."""
        if size is None:
            return
        limit = self.settings.max_upload_bytes
        if size > limit:
            raise FileTooLargeError(
                f"This file is {_megabytes(size)}; the limit is {_megabytes(limit)}.",
                hint="Send a smaller export (for example one year), or ask the operator to "
                "raise MARKETBOT_MAX_UPLOAD_MB.",
            )
        if channel_limit is not None and size > channel_limit:
            raise FileTooLargeError(
                f"This file is {_megabytes(size)}; Telegram lets bots download at most "
                f"{_megabytes(channel_limit)}.",
                hint="Zip the file (.zip or .gz work), or ask the operator to run a local Bot "
                "API server and set TELEGRAM_API_BASE_URL, which lifts that limit.",
            )

    def running_tool(self, chat_id: int) -> str | None:
        return self._running.get(chat_id)

    async def shutdown(self, *, grace: float = 5.0) -> None:
        """Refuse new jobs, give running ones `grace` seconds, then cancel the rest."""
        self._stopping = True
        deadline = time.monotonic() + grace
        while self._running and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        for chat_id in list(self._running):
            log.info("cancelling chat=%s tool=%s for shutdown", chat_id, self._running[chat_id])
            self._stop_job(chat_id)

    def warm_up(self) -> None:
        """Start the ingest worker now, so that the first upload does not wait for it."""
        self._pool().submit(int)

    def close(self) -> None:
        if self._ingest_pool is not None:
            self._ingest_pool.shutdown(wait=True, cancel_futures=True)
            self._ingest_pool = None

    # Built-in commands -----------------------------------------------------------------

    async def _builtin(self, chat_id: int, command: Command) -> Reply:
        handlers: dict[str, Callable[[int, list[str]], Reply]] = {
            "start": self._start,
            "help": self._help,
            "datasets": self._datasets,
            "use": self._use,
            "map": self._map,
            "export": self._export,
            "cancel": self._cancel,
            "forget": self._forget,
        }
        return handlers[command.name](chat_id, command.args)

    def _start(self, chat_id: int, args: list[str]) -> Reply:
        owned = list_datasets(self.engine, chat_id)
        text = (
            "Hi! I read your shop's order exports and answer with tables and charts: who your "
            "customers are, what sells together, and more.\n\n"
        )
        if owned:
            text += f"This chat has {len(owned)} dataset(s); the active one is used by default."
        else:
            text += (
                "Send me a CSV or Excel export of your orders to begin. The caption may name it "
                "(name=spring) and fix column roles (product=Description)."
            )
        buttons = (
            [Button("Describe my data", "/describe")] if owned and self._has("describe") else []
        )
        return Reply(text=text, hint="Send /help for every command.", buttons=buttons)

    def _help(self, chat_id: int, args: list[str]) -> Reply:
        if args:
            return self._help_for(args[0].lstrip("/").lower())
        lines = ["Commands:"]
        lines += [f"/{name} — {summary}" for name, summary in BUILTIN_HELP.items()]
        lines += ["", "Analysis:"]
        lines += [f"/{tool.name} — {tool.summary}" for tool in self._tools()]
        lines += ["", "Or ask in plain words, for example:"]
        lines += [f"  {example}" for example in EXAMPLE_QUESTIONS]
        return Reply(text="\n".join(lines), hint="/help TOOL shows a tool's parameters.")

    def _help_for(self, name: str) -> Reply:
        if name in BUILTIN_HELP:
            return Reply(text=f"/{name} — {BUILTIN_HELP[name]}")
        tool = self.registry.get(name)
        lines = [f"/{tool.name} — {tool.summary}", "", f"Usage: {tool.usage()}"]
        if tool.help:
            lines += ["", tool.help.strip()]
        fields = tool.params_model.model_fields
        if fields:
            lines += ["", "Parameters:"]
        for field_name, info in fields.items():
            allowed = describe_allowed(tool.params_model, field_name)
            default = info.get_default(call_default_factory=True)
            line = f"  {field_name}"
            if info.description:
                line += f" — {info.description}"
            details = [part for part in (allowed, _default_text(default)) if part]
            if details:
                line += f" ({'; '.join(details)})"
            lines.append(line)
        if tool.roles:
            lines += ["", "Needs columns for: " + ", ".join(tool.roles)]
        return Reply(text="\n".join(lines))

    def _datasets(self, chat_id: int, args: list[str]) -> Reply:
        owned = list_datasets(self.engine, chat_id)
        if not owned:
            return Reply(text="This chat has no data yet.", hint="Send a CSV or Excel export.")
        active = get_dataset(self.engine, chat_id).info.id
        lines = ["Your datasets:"]
        buttons = []
        for info in owned:
            mark = " (active)" if info.id == active else ""
            lines.append(f"• {info.name} — {info.row_count:,} rows, {info.kind}{mark}")
            if info.id != active and len(buttons) < MAX_DATASET_BUTTONS:
                buttons.append(Button(f"Use {info.name}", f"/use {quote_word(info.name)}"))
        return Reply(text="\n".join(lines), buttons=buttons)

    def _use(self, chat_id: int, args: list[str]) -> Reply:
        if not args:
            return self._datasets(chat_id, args)
        dataset = get_dataset(self.engine, chat_id, " ".join(args))
        set_active_dataset(self.engine, chat_id, dataset.info.id)
        info = dataset.info
        return Reply(
            text=f"Now using {info.name} ({info.row_count:,} rows).",
            buttons=self._next_steps(info),
        )

    def _map(self, chat_id: int, args: list[str]) -> Reply:
        dataset = get_dataset(self.engine, chat_id)
        if not args:
            return Reply(
                text=f"Column roles of {dataset.info.name}:\n{_roles_text(dataset.info)}",
                hint="Change one with /map ROLE=COLUMN, for example /map product=Description. "
                "Roles: " + ", ".join(ROLES),
            )
        info = remap_roles(self.engine, chat_id, None, parse_role_overrides(args))
        return Reply(text=f"Column roles of {info.name} now:\n{_roles_text(info)}")

    def _export(self, chat_id: int, args: list[str]) -> Reply:
        fmt = (args[0] if args else "csv").lower().lstrip(".")
        if fmt not in {"csv", "xlsx"}:
            raise BadParameterError(f"I can export csv or xlsx, not '{fmt}'.", hint="/export xlsx")
        state = self._state(chat_id)
        if state.last_report is None:
            return Reply(text="There is no result to export yet.", hint="Run a tool first.")
        if not state.last_report.tables:
            return Reply(text=f"The last result (/{state.last_tool}) has no tables to export.")
        files = report_files(state.last_report, state.last_tool, fmt=fmt)
        return Reply(text=f"The last result of /{state.last_tool} as {fmt.upper()}:", files=files)

    def _cancel(self, chat_id: int, args: list[str]) -> Reply:
        tool = self._running.get(chat_id)
        if tool is None or not self._stop_job(chat_id):
            return Reply(text="Nothing is running in this chat.")
        return Reply(text=f"Stopping /{tool}…")

    def _forget(self, chat_id: int, args: list[str]) -> Reply:
        state = self._state(chat_id)
        if args[:1] == ["keep"]:
            state.forget_token = ""
            return Reply(text="Kept everything.")
        if args[:1] == ["confirm"]:
            return self._forget_confirmed(chat_id, state, args[1] if len(args) > 1 else "")
        owned = list_datasets(self.engine, chat_id)
        if not owned:
            return Reply(text="This chat has no data to forget.")
        state.forget_token = secrets.token_hex(4)
        state.forget_until = time.monotonic() + FORGET_CONFIRM_SECONDS
        names = ", ".join(info.name for info in owned)
        return Reply(
            text=f"This deletes all {len(owned)} dataset(s) of this chat ({names}) for good, "
            "with the last results and the history of what was asked. Sure?",
            buttons=[
                Button("Yes, delete everything", f"/forget confirm {state.forget_token}"),
                Button("No, keep it", "/forget keep"),
            ],
        )

    def _forget_confirmed(self, chat_id: int, state: _ChatState, token: str) -> Reply:
        fresh = state.forget_token and time.monotonic() < state.forget_until
        if not fresh or not secrets.compare_digest(token, state.forget_token):
            return Reply(text="That confirmation has expired.", hint="Send /forget again.")
        if chat_id in self._running:
            self._stop_job(chat_id)
        count = delete_chat_data(self.engine, chat_id)
        self._states.pop(chat_id, None)
        log.info("forget chat=%s datasets=%s ok", chat_id, count)
        return Reply(text=f"Deleted {count} dataset(s), the results and the history of this chat.")

    # Tools -----------------------------------------------------------------------------

    async def _run_tool(
        self, chat_id: int, user_id: int | None, request: ToolRequest, progress: Progress
    ) -> Reply:
        busy = self._running.get(chat_id)
        if busy is not None:
            return Reply(text=f"/{busy} is still running.", hint="Wait for it, or send /cancel.")
        if self._stopping:
            return Reply(text="The bot is restarting.", hint="Send the command again in a minute.")
        dataset = self._check_dataset(chat_id, request)

        report = await self._execute(chat_id, user_id, request, dataset, progress)
        state = self._state(chat_id)
        state.last_tool, state.last_report = request.tool.name, report
        return Reply(report=report, buttons=self._report_buttons(report), tool=request.tool.name)

    async def _execute(
        self,
        chat_id: int,
        user_id: int | None,
        request: ToolRequest,
        dataset: DatasetInfo | None,
        progress: Progress,
    ) -> Report:
        """Run the tool in a worker; log one line and a run-log entry however it ends."""
        name = request.tool.name
        rows = dataset.row_count if dataset else 0
        self._running[chat_id] = name
        self._cancelling.discard(chat_id)
        started_at, started = utcnow(), time.monotonic()
        outcome, detail = "error", None
        try:
            await progress(f"running /{name}" + (f" on {rows:,} rows" if rows else ""))
            call = ToolCall(
                name, request.params, chat_id, user_id=user_id, dataset=request.dataset
            )
            report = await self.runner.run(call, job_key=_job_key(chat_id))
            outcome = "ok"
            return report
        except ToolTimeoutError:
            outcome = "cancelled" if chat_id in self._cancelling else "timeout"
            raise
        except Exception as exc:
            detail = type(exc).__name__
            raise
        finally:
            self._running.pop(chat_id, None)
            took = time.monotonic() - started
            shown = outcome if detail is None else f"{outcome}={detail}"
            log.info("tool=%s chat=%s rows=%s took=%.1fs %s", name, chat_id, rows, took, shown)
            entry = {
                "chat_id": chat_id,
                "user_id": user_id,
                "tool": name,
                "params": request.params.model_dump(),
                "dataset_id": dataset.id if dataset else None,
                "started_at": started_at,
                "duration_s": took,
                "outcome": outcome,
                "detail": detail,
            }
            await self._log_run(entry)

    def _check_dataset(self, chat_id: int, request: ToolRequest) -> DatasetInfo | None:
        """Fail early, on the event loop, when the chat has no data or misses a role."""
        if not request.tool.needs_dataset:
            return None
        dataset = get_dataset(self.engine, chat_id, request.dataset)
        dataset.require(*request.tool.roles, tool=request.tool.name)
        return dataset.info

    async def _log_run(self, entry: dict[str, Any]) -> None:
        """Add a run to the run log; failing to log never fails the reply."""
        try:
            await asyncio.to_thread(log_run, self.engine, **entry)
        except Exception:
            log.exception("could not write the run log for chat=%s", entry["chat_id"])

    def _stop_job(self, chat_id: int) -> bool:
        self._cancelling.add(chat_id)
        return self.runner.cancel(_job_key(chat_id))

    def _report_buttons(self, report: Report) -> list[Button]:
        buttons = [Button(followup.label, followup.command) for followup in report.followups]
        if report.tables:
            buttons.append(Button("Download CSV", "/export csv"))
        return buttons

    # Uploads ---------------------------------------------------------------------------

    async def _ingest(
        self, path: Path, *, chat_id: int, name: str | None, overrides: Any
    ) -> tuple[list[str], DatasetInfo]:
        # Parsing a big export is CPU work; in a process of its own it cannot slow down
        # other chats' replies on the event loop.
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._pool(), ingest_in_worker, self.settings, path, chat_id, name, overrides
        )

    def _pool(self) -> ProcessPoolExecutor:
        if self._ingest_pool is None:
            # The tool runner's fork server has pandas imported already; share it.
            context = multiprocessing.get_context("forkserver")
            self._ingest_pool = ProcessPoolExecutor(max_workers=1, mp_context=context)
        return self._ingest_pool

    def _next_steps(self, info: DatasetInfo) -> list[Button]:
        """Buttons for the tools this dataset can feed, `describe` first."""
        usable = [tool for tool in self._tools() if set(tool.roles) <= set(info.roles)]
        usable.sort(key=lambda tool: tool.name != "describe")
        return [Button(f"/{tool.name}", f"/{tool.name}") for tool in usable[:4]]

    # Helpers ---------------------------------------------------------------------------

    def _tools(self) -> list[Any]:
        return [tool for tool in self.registry if tool.name not in BUILTINS]

    def _has(self, name: str) -> bool:
        return name in self.registry

    def _not_understood(self) -> Reply:
        return Reply(
            text="I did not understand that.",
            hint="Try a command from /help, or ask e.g. “" + EXAMPLE_QUESTIONS[0] + "”",
        )

    def _state(self, chat_id: int) -> _ChatState:
        state = self._states.pop(chat_id, None) or _ChatState()
        self._states[chat_id] = state
        while len(self._states) > REMEMBERED_CHATS:
            self._states.popitem(last=False)
        return state


def ingest_in_worker(
    settings: Settings, path: Path, chat_id: int, name: str | None, overrides: Any
) -> tuple[list[str], DatasetInfo]:
    """Ingest a file in a worker process; return the summary lines and the new dataset."""
    engine = open_store(settings)
    try:
        summary = ingest_path(
            engine, path, chat_id=chat_id, name=name, overrides=overrides, settings=settings
        )
        return summary.lines(), summary.dataset.info
    finally:
        engine.dispose()


def parse_caption(caption: str) -> tuple[str | None, Any]:
    """Read `name=spring product=Description` from an upload's caption."""
    name = None
    roles = []
    for word in split_words(caption):
        key, sep, value = word.partition("=")
        if not sep:
            raise BadParameterError(
                f"I could not read '{word}' in the caption.",
                hint="Write name=NAME and ROLE=COLUMN pairs, e.g. name=spring product=Description",
            )
        if key.strip().lower() in {"name", "dataset"}:
            name = value.strip() or None
        else:
            roles.append(word)
    return name, parse_role_overrides(roles)


def error_reply(exc: MarketbotError) -> Reply:
    return Reply(text=exc.message, hint=exc.hint, error=True)


def _job_key(chat_id: int) -> str:
    return f"chat:{chat_id}"


def _roles_text(info: DatasetInfo) -> str:
    if not info.roles:
        return "  (no roles: a plain table)"
    return "\n".join(f"  {role} = {column}" for role, column in info.roles.items())


def _default_text(default: object) -> str:
    return "" if default is None else f"default {default}"


def _megabytes(size: int) -> str:
    return f"{size / 1024 / 1024:,.1f} MB"
