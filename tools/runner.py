"""Run tools away from the caller: one worker process per job, with a time limit and cancel.

Each job runs in its own process forked from a warm fork server that has already imported
pandas, scikit-learn and the tool modules, so a job starts in milliseconds and can be
stopped on its own (time limit, `/cancel`) without disturbing other chats' jobs. At most
`settings.workers` jobs run at once; the rest wait for a slot.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import threading
import time
import traceback
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, cast

from sqlalchemy import Engine

from storage.datasets import Dataset, get_dataset
from storage.engine import make_engine
from storage.errors import MarketbotError, ToolTimeoutError
from storage.settings import Settings
from tools.base import BaseTool, Params, Report
from tools.registry import ENTRY_POINT_GROUP, Registry, load_registry

log = logging.getLogger(__name__)

# Modules the fork server imports once, so that each job process starts warm.
_PRELOAD = ["pandas", "numpy", "sklearn.cluster", "matplotlib.figure", "tools.runner"]


@dataclass(frozen=True)
class ToolCall:
    """One request for a tool: which tool, its parsed parameters, and whose data."""

    tool: str
    params: Params
    chat_id: int
    user_id: int | None = None
    #: Dataset name; None means the chat's active dataset.
    dataset: str | None = None


class JobCrashedError(Exception):
    """A worker process failed with an unexpected error (a bug, not bad input)."""

    def __init__(self, message: str, *, details: str) -> None:
        super().__init__(message)
        self.details = details


@dataclass
class _Job:
    key: str
    call: ToolCall
    tool: BaseTool
    process: BaseProcess | None = None
    cancelled: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class ToolRunner:
    """Runs tool calls in worker processes, at most `settings.workers` at a time."""

    def __init__(self, settings: Settings, registry: Registry | None = None) -> None:
        self.settings = settings
        self.registry = registry if registry is not None else load_registry()
        self._context = multiprocessing.get_context("forkserver")
        plugin_modules = [entry.module for entry in entry_points(group=ENTRY_POINT_GROUP)]
        self._context.set_forkserver_preload(_PRELOAD + plugin_modules)
        self._slots = threading.BoundedSemaphore(settings.workers)
        # Jobs waiting for a slot block a thread each, so they get their own pool.
        self._threads = ThreadPoolExecutor(max_workers=32, thread_name_prefix="tool-job")
        self._jobs: dict[str, _Job] = {}

    async def run(self, call: ToolCall, *, job_key: str | None = None) -> Report:
        """Run a call without blocking the event loop; raise `MarketbotError` on bad input."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, self.run_sync, call, job_key)

    def run_sync(self, call: ToolCall, job_key: str | None = None) -> Report:
        """Run a call and wait for its report (for the console, scripts and digests)."""
        tool = self.registry.get(call.tool)  # unknown tools fail here, before a process starts
        job = _Job(key=job_key or uuid.uuid4().hex, call=call, tool=tool)
        self._jobs[job.key] = job
        started = time.monotonic()
        outcome = "error"
        try:
            with self._slots:
                report = self._execute(job)
            outcome = "ok"
            return report
        except ToolTimeoutError:
            outcome = "cancelled" if job.cancelled else "timeout"
            raise
        finally:
            self._jobs.pop(job.key, None)
            log.info(
                "tool=%s chat=%s took=%.2fs %s",
                call.tool,
                call.chat_id,
                time.monotonic() - started,
                outcome,
            )

    def cancel(self, job_key: str) -> bool:
        """Stop a queued or running job; return whether there was one."""
        job = self._jobs.get(job_key)
        if job is None:
            return False
        with job.lock:
            job.cancelled = True
            if job.process is not None and job.process.is_alive():
                job.process.kill()
        return True

    def close(self) -> None:
        """Stop every running job and release the threads."""
        for key in list(self._jobs):
            self.cancel(key)
        self._threads.shutdown(wait=False, cancel_futures=True)

    def _execute(self, job: _Job) -> Report:
        receiver, sender = self._context.Pipe(duplex=False)
        with job.lock:
            if job.cancelled:
                raise ToolTimeoutError("The job was cancelled before it started.")
            process = self._context.Process(
                target=_work,
                args=(sender, self.settings.db_url, job.tool, job.call),
                name=f"marketbot-{job.call.tool}",
                daemon=True,
            )
            process.start()
            job.process = process
        sender.close()
        try:
            return self._wait(job, process, receiver)
        finally:
            receiver.close()
            process.join(timeout=5)

    def _wait(self, job: _Job, process: BaseProcess, receiver: Connection) -> Report:
        limit = self.settings.tool_time_limit_s
        message: tuple[str, Any] | None = None
        if receiver.poll(limit):
            try:
                message = receiver.recv()
            except EOFError:
                message = None
        if message is None:
            process.kill()
            if job.cancelled:
                raise ToolTimeoutError(f"/{job.call.tool} was cancelled.")
            if process.is_alive() or process.exitcode in (None, -9):
                raise ToolTimeoutError(
                    f"/{job.call.tool} took longer than {limit:g} s and was stopped.",
                    hint="Narrow it down (a date range, a higher min_support) or ask the "
                    "operator to raise MARKETBOT_TOOL_TIME_LIMIT.",
                )
            raise JobCrashedError(
                f"/{job.call.tool} stopped unexpectedly (exit code {process.exitcode}).",
                details="",
            )
        status, payload = message
        if status == "ok":
            return payload
        if status == "error":
            raise payload
        raise JobCrashedError(f"/{job.call.tool} failed with an internal error.", details=payload)


def execute_call(tool: BaseTool, call: ToolCall, *, engine: Engine) -> Report:
    """Run one call in this process: find the dataset, check the tool's roles, run."""
    params = tool.params_model.model_validate(call.params.model_dump())
    if not tool.needs_dataset:
        # Such tools read no data; the contract says they get None.
        return tool.run(cast(Dataset, None), params)
    dataset = get_dataset(engine, call.chat_id, call.dataset)
    dataset.require(*tool.roles, tool=tool.name)
    report = tool.run(dataset, params)
    if dataset.currency:
        # Renderers show money columns with the data's own currency.
        report.facts.setdefault("currency", dataset.currency)
    return report


def _work(sender: Connection, db_url: str, tool: BaseTool, call: ToolCall) -> None:
    """Entry point of a job process: run the call and send back the outcome."""
    engine = make_engine(db_url)
    try:
        report = execute_call(tool, call, engine=engine)
        sender.send(("ok", report))
    except MarketbotError as exc:
        sender.send(("error", exc))
    except Exception:
        sender.send(("crash", traceback.format_exc()))
    finally:
        sender.close()
        engine.dispose()
