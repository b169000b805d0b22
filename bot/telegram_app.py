"""The Telegram channel: a python-telegram-bot `Application` around the chat core.

Updates are handled concurrently, so a long job in one chat never delays `/help` in another
(the jobs themselves run in worker processes). Replies go through PTB's `AIORateLimiter`,
which waits out Telegram's `retry_after` instead of dropping messages. Only allowed users
and chats get answers; everyone else learns their numeric id and nothing more.

In groups the dataset belongs to the group chat. There the bot answers commands meant for it
(`/segment` or `/segment@ThisBot`), and plain sentences and files only when they mention it
or reply to it, so it stays out of the team's own conversation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
import tempfile
import time
from collections import OrderedDict
from pathlib import Path
from urllib.parse import urlparse

from telegram import (
    Bot,
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaPhoto,
    LinkPreviewOptions,
    Message,
    Update,
)
from telegram.constants import ChatAction, ChatType, ParseMode
from telegram.error import TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot.chat import BUILTIN_HELP, ChatCore, error_reply
from bot.export import safe_filename
from bot.render import (
    AlbumMessage,
    DocumentMessage,
    PhotoMessage,
    TextMessage,
    escape,
    render_telegram,
)
from bot.reply import Button, Reply
from bot.router import BUILTINS
from storage.errors import MarketbotError
from storage.settings import Settings
from storage.store import open_store
from tools.registry import Registry, load_registry
from tools.runner import ToolRunner

log = logging.getLogger(__name__)

#: Bots on Telegram's own servers may download files up to 20 MB; a local Bot API has no cap.
CLOUD_DOWNLOAD_LIMIT = 20 * 1024 * 1024
#: Telegram's limit for callback data; longer button commands are kept server-side.
CALLBACK_DATA_LIMIT = 64
#: A status message appears only for requests that take longer than this.
STATUS_DELAY_S = 1.0
#: Telegram shows a chat action for about five seconds; renew it a little sooner.
CHAT_ACTION_EVERY_S = 4.5
#: How long running jobs may finish on SIGINT/SIGTERM before they are cancelled.
SHUTDOWN_GRACE_S = 5.0
REMEMBERED_BUTTONS = 5000


def run_bot(settings: Settings, *, webhook_url: str | None = None, port: int = 8443) -> int:
    """Run the bot until SIGINT or SIGTERM; return the exit status."""
    channel = TelegramChannel(settings)
    application = channel.build()
    # PTB's own signal handling would stop at once; ours lets running jobs finish first.
    if webhook_url:
        path = urlparse(webhook_url).path.lstrip("/")
        application.run_webhook(
            listen="0.0.0.0",
            port=port,
            url_path=path,
            webhook_url=webhook_url,
            secret_token=secrets.token_urlsafe(32),
            allowed_updates=ALLOWED_UPDATES,
            stop_signals=None,
        )
    else:
        application.run_polling(allowed_updates=ALLOWED_UPDATES, stop_signals=None)
    return 0


ALLOWED_UPDATES = [Update.MESSAGE, Update.CALLBACK_QUERY]


class TelegramChannel:
    """Owns the store, tool runner and chat core for the lifetime of the application."""

    def __init__(self, settings: Settings, *, registry: Registry | None = None) -> None:
        self.settings = settings
        self.registry = registry if registry is not None else load_registry()
        self.engine = open_store(settings)
        self.runner = ToolRunner(settings, self.registry)
        self.core = ChatCore(
            settings, engine=self.engine, registry=self.registry, runner=self.runner
        )
        self.application: Application | None = None
        self._button_commands: OrderedDict[str, str] = OrderedDict()
        self._stopping = False
        cloud = "api.telegram.org" in settings.telegram_api_base_url
        self.download_limit = CLOUD_DOWNLOAD_LIMIT if cloud else None

    def build(self) -> Application:
        token = self.settings.telegram_bot_token
        if token is None:
            raise ValueError("TELEGRAM_BOT_TOKEN is not set")
        application = (
            Application.builder()
            .token(token.get_secret_value())
            .base_url(self.settings.telegram_api_base_url)
            .base_file_url(self.settings.file_url)
            .rate_limiter(AIORateLimiter(max_retries=5))
            .concurrent_updates(64)
            .read_timeout(30)
            .write_timeout(60)
            .media_write_timeout(60)
            .post_init(self._post_init)
            .post_shutdown(self._post_shutdown)
            .build()
        )
        application.add_handler(TypeHandler(Update, self._gate), group=-1)
        application.add_handler(MessageHandler(filters.Document.ALL, self._on_document))
        application.add_handler(MessageHandler(filters.TEXT, self._on_text))
        application.add_handler(CallbackQueryHandler(self._on_button))
        application.add_error_handler(self._on_error)
        self.application = application
        return application

    # Lifecycle -------------------------------------------------------------------------

    async def _post_init(self, application: Application) -> None:
        self.core.bot_username = application.bot.username
        await application.bot.set_my_commands(self._menu())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)
        self.core.warm_up()
        log.info(
            "bot started as @%s with tools: %s",
            application.bot.username,
            ", ".join(tool.name for tool in self.registry),
        )

    def _menu(self) -> list[BotCommand]:
        commands = [BotCommand(name, summary) for name, summary in BUILTIN_HELP.items()]
        for tool in self.registry:
            if tool.name not in BUILTINS and _valid_command(tool.name):
                commands.append(BotCommand(tool.name, tool.summary[:256] or tool.name))
        return commands[:100]

    def _on_signal(self, sig: signal.Signals) -> None:
        if self._stopping:
            return
        self._stopping = True
        log.info("received %s; finishing running jobs", signal.Signals(sig).name)
        asyncio.get_running_loop().create_task(self._stop())

    async def _stop(self) -> None:
        await self.core.shutdown(grace=SHUTDOWN_GRACE_S)
        if self.application is not None:
            # A signal can come while PTB is still starting (post_init runs before polling
            # or the webhook server start), and stop_running() does nothing until then.
            while not self.application.running:
                await asyncio.sleep(0.05)
            # Stops polling; PTB then waits for every update being handled, so the replies
            # of finished and cancelled jobs still go out.
            self.application.stop_running()

    async def _post_shutdown(self, application: Application) -> None:
        self.runner.close()
        self.core.close()
        self.engine.dispose()
        log.info("bot stopped")

    # Access ----------------------------------------------------------------------------

    async def _gate(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Let allowed users and chats through; tell anyone else their id, nothing more."""
        if not isinstance(update, Update):
            raise ApplicationHandlerStop
        user, chat = update.effective_user, update.effective_chat
        if user is None or chat is None:
            raise ApplicationHandlerStop
        if self._allowed(user.id, chat.id):
            return
        log.info("denied user=%s chat=%s", user.id, chat.id)
        text = (
            f"This bot is private. Your user id is {user.id}"
            + (f" and this chat's id is {chat.id}" if chat.id != user.id else "")
            + ". Ask the operator to allow it (ALLOWED_USER_IDS or ALLOWED_CHAT_IDS)."
        )
        if update.callback_query is not None:
            await update.callback_query.answer(text, show_alert=True)
        elif update.effective_message is not None and self._addressed(update.effective_message):
            await update.effective_message.reply_text(text)
        raise ApplicationHandlerStop

    def _allowed(self, user_id: int, chat_id: int) -> bool:
        settings = self.settings
        return (
            settings.allow_everyone
            or user_id in settings.allowed_user_ids
            or chat_id in settings.allowed_chat_ids
        )

    def _addressed(self, message: Message) -> bool:
        """Whether a message is for this bot: all in private; in groups commands and mentions."""
        if message.chat.type == ChatType.PRIVATE:
            return True
        text = message.text or message.caption or ""
        username = (self.core.bot_username or "").lower()
        if text.startswith("/"):
            first = text.split()[0].lower()
            return "@" not in first or first.endswith(f"@{username}")
        replied = message.reply_to_message
        sender = replied.from_user if replied is not None else None
        if sender is not None and sender.id == message.get_bot().id:
            return True
        return bool(username) and f"@{username}" in text.lower()

    # Handlers --------------------------------------------------------------------------

    async def _on_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None or message.text is None or not self._addressed(message):
            return
        await self._answer(update, self._without_mention(message.text))

    async def _on_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        if query is None:
            return
        command = self._button_commands.get(query.data or "", query.data or "")
        if not command.startswith("/"):
            await query.answer("This button has expired; type the command instead.")
            return
        await query.answer()
        if command.startswith("/forget") and query.message is not None:
            # A confirmation is used once; take its buttons away.
            with contextlib.suppress(TelegramError):
                await query.edit_message_reply_markup(reply_markup=None)
        await self._answer(update, command)

    async def _on_document(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None or message.document is None or not self._addressed(message):
            return
        chat_id = message.chat_id
        document = message.document
        try:
            self.core.check_upload_size(document.file_size, channel_limit=self.download_limit)
        except MarketbotError as exc:
            await self._send(chat_id, error_reply(exc), None)
            return
        status = Status(context.bot, chat_id, action=ChatAction.UPLOAD_DOCUMENT)
        try:
            with tempfile.TemporaryDirectory(prefix="marketbot-upload-") as folder:
                path = Path(folder) / safe_filename(document.file_name or "upload.csv")
                await status.step("downloading the file")
                telegram_file = await context.bot.get_file(document.file_id)
                await telegram_file.download_to_drive(path)
                reply = await self.core.handle_upload(
                    chat_id,
                    path,
                    caption=self._without_mention(message.caption or ""),
                    user_id=update.effective_user.id if update.effective_user else None,
                    progress=status.step,
                )
        finally:
            await status.stop()
        await self._send(chat_id, reply, status)

    async def _answer(self, update: Update, text: str) -> None:
        chat = update.effective_chat
        user = update.effective_user
        if chat is None:
            return
        started = time.monotonic()
        status = Status(self._bot(), chat.id, action=ChatAction.TYPING)
        try:
            reply = await self.core.handle_text(
                chat.id, text, user_id=user.id if user else None, progress=status.step
            )
        finally:
            await status.stop()
        if reply is not None:
            await self._send(chat.id, reply, status)
        log.info(
            "message chat=%s user=%s command=%s took=%.3fs",
            chat.id,
            user.id if user else None,
            _command_word(text),
            time.monotonic() - started,
        )

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Log the failure with a reference, tell the user the reference, keep serving."""
        reference = secrets.token_hex(3)
        chat = update.effective_chat if isinstance(update, Update) else None
        log.error(
            "update failed ref=%s chat=%s",
            reference,
            chat.id if chat else None,
            exc_info=context.error,
        )
        if chat is None:
            return
        with contextlib.suppress(TelegramError):
            await context.bot.send_message(
                chat.id,
                f"Sorry, something went wrong on my side (ref {reference}). "
                "Please try again; the operator can look the reference up in the log.",
            )

    # Sending ---------------------------------------------------------------------------

    async def _send(self, chat_id: int, reply: Reply, status: Status | None) -> None:
        """Send a reply; the first text replaces the status message when there is one."""
        messages = render_telegram(reply)
        bot = self._bot()
        first = messages[0] if messages else None
        if status is not None and status.message_id is not None:
            if isinstance(first, TextMessage):
                await bot.edit_message_text(
                    first.html,
                    chat_id=chat_id,
                    message_id=status.message_id,
                    parse_mode=ParseMode.HTML,
                    reply_markup=self._keyboard(first.buttons),
                    link_preview_options=LinkPreviewOptions(is_disabled=True),
                )
                messages = messages[1:]
            else:
                with contextlib.suppress(TelegramError):
                    await bot.delete_message(chat_id, status.message_id)
        for message in messages:
            await self._send_one(chat_id, message)

    async def _send_one(self, chat_id: int, message: object) -> None:
        bot = self._bot()
        if isinstance(message, TextMessage):
            await bot.send_message(
                chat_id,
                message.html,
                parse_mode=ParseMode.HTML,
                reply_markup=self._keyboard(message.buttons),
                link_preview_options=LinkPreviewOptions(is_disabled=True),
            )
        elif isinstance(message, PhotoMessage):
            await bot.send_photo(
                chat_id, message.png, caption=message.caption or None, parse_mode=ParseMode.HTML
            )
        elif isinstance(message, AlbumMessage):
            media = [
                InputMediaPhoto(
                    photo.png, caption=photo.caption or None, parse_mode=ParseMode.HTML
                )
                for photo in message.photos
            ]
            await bot.send_media_group(chat_id, media)
        elif isinstance(message, DocumentMessage):
            await bot.send_document(
                chat_id,
                message.data,
                filename=message.filename,
                caption=message.caption or None,
                parse_mode=ParseMode.HTML,
            )

    def _keyboard(self, buttons: list[Button]) -> InlineKeyboardMarkup | None:
        if not buttons:
            return None
        keys = [
            InlineKeyboardButton(button.label, callback_data=self._callback_data(button.command))
            for button in buttons
        ]
        rows = [keys[start : start + 2] for start in range(0, len(keys), 2)]
        return InlineKeyboardMarkup(rows)

    def _callback_data(self, command: str) -> str:
        """The command itself when it fits Telegram's 64 bytes, else a remembered token."""
        if len(command.encode()) <= CALLBACK_DATA_LIMIT:
            return command
        token = "b:" + secrets.token_hex(8)
        self._button_commands[token] = command
        while len(self._button_commands) > REMEMBERED_BUTTONS:
            self._button_commands.popitem(last=False)
        return token

    def _without_mention(self, text: str) -> str:
        username = self.core.bot_username
        if not username:
            return text
        return text.replace(f"@{username}", " ").strip() if not text.startswith("/") else text

    def _bot(self) -> Bot:
        if self.application is None:
            raise RuntimeError("the application is not built")
        return self.application.bot


class Status:
    """Progress for one request: a chat action, then a status message edited as steps finish.

    Nothing is sent for fast requests: the chat action starts with the first step, and the
    status message only once a request has taken longer than `STATUS_DELAY_S`.
    """

    def __init__(self, bot: Bot, chat_id: int, *, action: str) -> None:
        self.bot = bot
        self.chat_id = chat_id
        self.action = action
        self.steps: list[str] = []
        self.message_id: int | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._lock = asyncio.Lock()
        self._sending = False

    async def step(self, description: str) -> None:
        self.steps.append(description)
        if len(self.steps) == 1:
            self._tasks.append(asyncio.create_task(self._keep_action()))
            self._tasks.append(asyncio.create_task(self._show_later(), name="status-message"))
        elif self.message_id is not None:
            await self._update()

    async def stop(self) -> None:
        for task in self._tasks:
            # A status message already on its way is awaited, so its id is known and the
            # result can replace it; anything else is simply called off.
            if not (task.get_name() == "status-message" and self._sending):
                task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, TelegramError):
                await task
        self._tasks.clear()

    def _text(self) -> str:
        done = [f"✓ {escape(step)}" for step in self.steps[:-1]]
        return "\n".join(["<b>Working…</b>", *done, f"⏳ {escape(self.steps[-1])}"])

    async def _keep_action(self) -> None:
        while True:
            with contextlib.suppress(TelegramError):
                await self.bot.send_chat_action(self.chat_id, self.action)
            await asyncio.sleep(CHAT_ACTION_EVERY_S)

    async def _show_later(self) -> None:
        await asyncio.sleep(STATUS_DELAY_S)
        self._sending = True
        async with self._lock:
            sent = await self.bot.send_message(
                self.chat_id, self._text(), parse_mode=ParseMode.HTML
            )
            self.message_id = sent.message_id

    async def _update(self) -> None:
        async with self._lock:
            with contextlib.suppress(TelegramError):
                await self.bot.edit_message_text(
                    self._text(),
                    chat_id=self.chat_id,
                    message_id=self.message_id,
                    parse_mode=ParseMode.HTML,
                )


def _valid_command(name: str) -> bool:
    return 1 <= len(name) <= 32 and all(
        char.islower() or char.isdigit() or char == "_" for char in name
    )


def _command_word(text: str) -> str:
    return text.split()[0].split("@")[0] if text.startswith("/") else "(sentence)"
