"""`marketbot shell`: chat with the bot in a terminal, through the same core as Telegram.

Lines go to the same router and chat core as Telegram messages; `:upload PATH` plays a file
upload and `:press N` a button. Replies print as text tables; charts and files are saved
under the data directory and their paths printed. When standard input is not a terminal,
lines are read one at a time, so the console can be scripted:

    printf ':upload orders.csv\\n/describe\\n' | marketbot shell
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import shutil
import sys
import threading
from pathlib import Path

from bot.chat import ChatCore, error_reply
from bot.render import render_terminal
from bot.reply import Button, Reply
from storage.datasets import list_datasets
from storage.errors import MarketbotError
from storage.settings import Settings
from storage.store import open_store
from tools.registry import load_registry
from tools.runner import ToolRunner

log = logging.getLogger(__name__)

DEMO_ROWS = 20_000
DEMO_SEED = 7
CONSOLE_HELP = """Type commands (/help) or questions as in a chat. Console extras:
  :upload PATH [name=NAME ROLE=COLUMN ...]   send a file, as if attached in Telegram
  :press N                                  press button N of the last reply
  :quit                                     leave (Ctrl-D works too)"""


def run_shell(settings: Settings, *, chat_id: int = 1, demo: bool = False) -> int:
    """Run the console until end of input or `:quit`; return the exit status."""
    try:
        return asyncio.run(_Console(settings, chat_id).run(demo=demo))
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130


class _LineReader:
    """Reads standard input one line at a time, in a daemon thread.

    The thread reads a line only when asked, so a scripted session never reads ahead, and
    being a daemon it cannot keep the process alive after Ctrl-C.
    """

    def __init__(self, *, prompt: str) -> None:
        self.prompt = prompt
        self.interactive = sys.stdin.isatty()

    async def read(self) -> str | None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[str | None] = loop.create_future()

        def work() -> None:
            line = self._read_blocking()
            loop.call_soon_threadsafe(_resolve, future, line)

        threading.Thread(target=work, name="console-input", daemon=True).start()
        return await future

    def _read_blocking(self) -> str | None:
        if self.interactive:
            try:
                return input(self.prompt)
            except EOFError:
                return None
        line = sys.stdin.readline()
        return line.rstrip("\r\n") if line else None


def _resolve(future: asyncio.Future[str | None], line: str | None) -> None:
    if not future.done():
        future.set_result(line)


class _Console:
    def __init__(self, settings: Settings, chat_id: int) -> None:
        self.settings = settings
        self.chat_id = chat_id
        self.out_dir = settings.data_dir / "console" / f"chat-{chat_id}"
        self.buttons: list[Button] = []

    async def run(self, *, demo: bool) -> int:
        engine = open_store(self.settings)
        registry = load_registry()
        runner = ToolRunner(self.settings, registry)
        self.core = ChatCore(self.settings, engine=engine, registry=registry, runner=runner)
        reader = _LineReader(prompt="you> ")
        try:
            if demo and not list_datasets(engine, self.chat_id):
                await self._load_demo()
            if reader.interactive:
                print(CONSOLE_HELP)
            while (line := await reader.read()) is not None:
                if line.strip() in {":quit", ":q", ":exit"}:
                    break
                await self._answer(line.strip())
        finally:
            runner.close()
            self.core.close()
            engine.dispose()
        return 0

    async def _answer(self, line: str) -> None:
        if not line or line.startswith("#"):
            return
        try:
            reply = await self._reply_to(line)
        except Exception:
            reference = secrets.token_hex(3)
            log.exception("console line failed ref=%s", reference)
            reply = Reply(text=f"Something went wrong (ref {reference}).", error=True)
        if reply is not None:
            self._show(reply)

    async def _reply_to(self, line: str) -> Reply | None:
        if line.startswith(":upload"):
            return await self._upload(line.removeprefix(":upload").strip())
        if line.startswith(":press"):
            return await self._press(line.removeprefix(":press").strip())
        if line.startswith(":help"):
            return Reply(text=CONSOLE_HELP)
        if line.startswith(":"):
            return Reply(text=f"Unknown console command {line.split()[0]}.", hint=":help")
        return await self.core.handle_text(self.chat_id, line, progress=_progress)

    async def _upload(self, rest: str) -> Reply:
        path_text, _, caption = rest.partition(" ")
        if not path_text:
            return Reply(text="Which file?", hint=":upload PATH", error=True)
        path = Path(path_text).expanduser()
        if not path.is_file():
            return Reply(text=f"There is no file at {path}.", error=True)
        try:
            self.core.check_upload_size(path.stat().st_size)
        except MarketbotError as exc:
            return error_reply(exc)
        return await self.core.handle_upload(
            self.chat_id, path, caption=caption, progress=_progress
        )

    async def _press(self, number: str) -> Reply | None:
        if not number.isdigit() or not 1 <= int(number) <= len(self.buttons):
            return Reply(text=f"There is no button {number or '?'}.", error=True)
        command = self.buttons[int(number) - 1].command
        print(f"you> {command}")
        return await self.core.handle_text(self.chat_id, command, progress=_progress)

    async def _load_demo(self) -> None:
        from storage.demo import write_demo_csv

        path = self.settings.data_dir / "demo" / "demo-orders.csv"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            write_demo_csv(path, rows=DEMO_ROWS, seed=DEMO_SEED)
        print(f"Loading demo data ({DEMO_ROWS:,} order lines) into chat {self.chat_id}…")
        reply = await self.core.handle_upload(self.chat_id, path, caption="name=demo")
        self._show(reply)

    def _show(self, reply: Reply) -> None:
        width = min(120, shutil.get_terminal_size((100, 24)).columns)
        print(render_terminal(reply, out_dir=self.out_dir, width=width), flush=True)
        if reply.buttons:
            self.buttons = list(reply.buttons)


async def _progress(step: str) -> None:
    print(f"… {step}", file=sys.stderr, flush=True)
