"""A fake Telegram Bot API server on 127.0.0.1, for end-to-end tests and the latency benchmark.

It speaks just enough of the Bot API for the real bot to run against it unchanged: a test
feeds user messages, documents and button presses into the `getUpdates` long poll, and reads
back every call the bot made (texts, photos, albums, documents with their bytes). It can be
told to answer a method with HTTP 429 and a `retry_after`, as Telegram does under flood.

Built on the standard library's `http.server` in a thread, so it needs no extra packages.
"""

from __future__ import annotations

import email.parser
import email.policy
import io
import itertools
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlparse

import matplotlib.image

TOKEN = "123456:TEST-token_for-the-fake-server"
BOT_ID = 123456
BOT_USERNAME = "MarketTestBot"
# Parameters that are plain text; every other form value is JSON-encoded by the client.
_TEXT_PARAMS = {"text", "caption", "parse_mode", "action", "callback_query_id", "file_id", "url"}


@dataclass
class Call:
    """One request the bot made: the method, its decoded parameters and any uploaded files."""

    method: str
    params: dict[str, Any]
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    at: float = field(default_factory=time.monotonic)
    status: int = 200
    #: The id of the message this call sent or edited (the first one, for an album).
    message_id: int | None = None

    @property
    def chat_id(self) -> int | None:
        value = self.params.get("chat_id")
        return int(value) if value is not None else None

    @property
    def text(self) -> str:
        return str(self.params.get("text") or self.params.get("caption") or "")

    def buttons(self) -> list[tuple[str, str]]:
        """(label, callback data) of every inline button on this message."""
        markup = self.params.get("reply_markup") or {}
        rows = markup.get("inline_keyboard", []) if isinstance(markup, dict) else []
        return [(key["text"], key.get("callback_data", "")) for row in rows for key in row]


class FakeTelegram:
    """The fake server; use as a context manager or call `start()` and `stop()`."""

    def __init__(self, *, token: str = TOKEN) -> None:
        self.token = token
        self.calls: list[Call] = []
        self._updates: list[dict[str, Any]] = []
        self._served: dict[int, float] = {}
        self._files: dict[str, bytes] = {}
        self._sent: dict[tuple[int, int], dict[str, Any]] = {}
        self._chat_types: dict[int, str] = {}
        self._failures: dict[str, list[tuple[int, int]]] = {}
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1000)
        self._condition = threading.Condition()
        self._closed = False
        #: (url, secret token) once the bot has set a webhook; updates are then POSTed there.
        self.webhook: tuple[str, str] | None = None
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # Life cycle --------------------------------------------------------------------------

    def start(self) -> FakeTelegram:
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeTelegram:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        """The value for TELEGRAM_API_BASE_URL."""
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def file_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/file/bot"

    # Playing a user ----------------------------------------------------------------------

    def send_text(
        self, chat_id: int, text: str, *, user_id: int | None = None, chat_type: str = ""
    ) -> int:
        """Queue a text message from a user; return its update id."""
        message = self._user_message(chat_id, user_id, chat_type)
        message["text"] = text
        if text.startswith("/"):
            command = text.split()[0]
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        return self._queue({"message": message})

    def send_document(
        self,
        chat_id: int,
        filename: str,
        data: bytes,
        *,
        caption: str | None = None,
        user_id: int | None = None,
        chat_type: str = "",
        file_size: int | None = None,
    ) -> int:
        """Queue a document upload; `file_size` may claim a size other than the real one."""
        file_id = f"doc-{len(self._files) + 1}"
        self._files[file_id] = data
        message = self._user_message(chat_id, user_id, chat_type)
        message["document"] = {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "file_name": filename,
            "mime_type": "text/csv",
            "file_size": len(data) if file_size is None else file_size,
        }
        if caption is not None:
            message["caption"] = caption
        return self._queue({"message": message})

    def press_button(
        self, chat_id: int, message_id: int, data: str, *, user_id: int | None = None
    ) -> int:
        """Queue a press on an inline button of a message the bot sent."""
        with self._condition:
            sent = self._sent.get((chat_id, message_id)) or self._message(chat_id, "")
        query = {
            "id": f"cq-{message_id}-{time.monotonic_ns()}",
            "from": _user(user_id if user_id is not None else chat_id),
            "chat_instance": f"ci-{chat_id}",
            "data": data,
            "message": sent,
        }
        return self._queue({"callback_query": query})

    def fail_next(
        self, method: str, *, retry_after: int = 1, times: int = 1, error_code: int = 429
    ) -> None:
        """Answer the next `times` calls of `method` with an error, by default 429 flood."""
        with self._condition:
            self._failures.setdefault(method, []).extend([(error_code, retry_after)] * times)

    # Reading what the bot did --------------------------------------------------------------

    def calls_to(self, method: str, *, chat_id: int | None = None) -> list[Call]:
        with self._condition:
            return [
                call
                for call in self.calls
                if call.method == method and (chat_id is None or call.chat_id == chat_id)
            ]

    def wait_for(self, predicate: Any, *, timeout: float = 20.0, after: int = 0) -> Call:
        """Wait for a call (from index `after` on) that satisfies the predicate."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while True:
                for call in self.calls[after:]:
                    if predicate(call):
                        return call
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [
                        (call.method, call.chat_id, call.text[:60]) for call in self.calls[after:]
                    ]
                    raise TimeoutError(f"no matching call within {timeout} s; saw {seen}")
                self._condition.wait(remaining)

    def mark(self) -> int:
        """The index of the next call, to wait only for calls made after this point."""
        with self._condition:
            return len(self.calls)

    def served_at(self, update_id: int) -> float | None:
        """When the update went out in a getUpdates response (monotonic clock)."""
        with self._condition:
            return self._served.get(update_id)

    # Server side ---------------------------------------------------------------------------

    def handle(self, method: str, params: dict[str, Any], files: dict) -> tuple[int, Any]:
        """Answer one Bot API call; returns (HTTP status, response body)."""
        with self._condition:
            failures = self._failures.get(method)
            if failures:
                error_code, retry_after = failures.pop(0)
                self._record(Call(method, params, files, status=error_code))
                return error_code, _error(error_code, retry_after)
        if method == "getUpdates":
            return 200, {"ok": True, "result": self._get_updates(params)}
        with self._condition:
            call = Call(method, params, files)
            answer = getattr(self, f"_api_{method}", None)
            if answer is None:
                self._record(call)
                return 404, {"ok": False, "error_code": 404, "description": "Not Found"}
            result = answer(params, files)
            first = result[0] if isinstance(result, list) and result else result
            if isinstance(first, dict) and "message_id" in first:
                call.message_id = first["message_id"]
            self._record(call)
            return 200, {"ok": True, "result": result}

    def download(self, file_path: str) -> bytes | None:
        with self._condition:
            self._record(Call("download", {"file_path": file_path}))
            return self._files.get(file_path.rpartition("/")[2])

    def _record(self, call: Call) -> None:
        self.calls.append(call)
        self._condition.notify_all()

    def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        timeout = float(params.get("timeout") or 0)
        deadline = time.monotonic() + timeout
        with self._condition:
            # Updates below the offset are confirmed by the bot and never sent again.
            self._updates = [update for update in self._updates if update["update_id"] >= offset]
            while not self._updates and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._condition.wait(remaining)
            batch = self._updates[: int(params.get("limit") or 100)]
            now = time.monotonic()
            for update in batch:
                self._served.setdefault(update["update_id"], now)
            return batch

    def _queue(self, update: dict[str, Any]) -> int:
        with self._condition:
            update["update_id"] = next(self._update_ids)
            self._updates.append(update)
            self._condition.notify_all()
            return update["update_id"]

    def _user_message(self, chat_id: int, user_id: int | None, chat_type: str) -> dict[str, Any]:
        chat_type = chat_type or ("private" if chat_id > 0 else "group")
        with self._condition:
            self._chat_types[chat_id] = chat_type
            message_id = next(self._message_ids)
        message = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": _chat(chat_id, chat_type),
            "from": _user(user_id if user_id is not None else chat_id),
        }
        return message

    def _message(self, chat_id: int, text: str, **extra: Any) -> dict[str, Any]:
        message = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": _chat(chat_id, self._chat_types.get(chat_id, "private")),
            "from": _bot_user(),
            **extra,
        }
        if text:
            message["text"] = text
        self._sent[(chat_id, message["message_id"])] = message
        return message

    # Bot API methods -------------------------------------------------------------------------

    def _api_getMe(self, params: dict, files: dict) -> dict[str, Any]:
        return _bot_user() | {"can_join_groups": True, "can_read_all_group_messages": False}

    def _api_setWebhook(self, params: dict, files: dict) -> bool:
        self.webhook = (params["url"], params.get("secret_token") or "")
        threading.Thread(target=self._deliver, name="fake-webhook", daemon=True).start()
        return True

    def _deliver(self) -> None:
        """Push queued updates to the webhook, one POST each, as Telegram does."""
        assert self.webhook is not None
        url, secret = self.webhook
        while True:
            with self._condition:
                while not self._updates and not self._closed:
                    self._condition.wait()
                if self._closed:
                    return
                update = self._updates.pop(0)
                self._served.setdefault(update["update_id"], time.monotonic())
            post_update(url, update, secret=secret)

    def _api_deleteWebhook(self, params: dict, files: dict) -> bool:
        return True

    def _api_setMyCommands(self, params: dict, files: dict) -> bool:
        return True

    def _api_sendChatAction(self, params: dict, files: dict) -> bool:
        return True

    def _api_answerCallbackQuery(self, params: dict, files: dict) -> bool:
        return True

    def _api_deleteMessage(self, params: dict, files: dict) -> bool:
        return True

    def _api_sendMessage(self, params: dict, files: dict) -> dict[str, Any]:
        return self._message(int(params["chat_id"]), params["text"])

    def _api_editMessageText(self, params: dict, files: dict) -> dict[str, Any]:
        chat_id, message_id = int(params["chat_id"]), int(params["message_id"])
        message = self._sent.get((chat_id, message_id)) or self._message(chat_id, "")
        message["text"] = params["text"]
        message["edit_date"] = int(time.time())
        return message

    def _api_editMessageReplyMarkup(self, params: dict, files: dict) -> dict[str, Any]:
        chat_id, message_id = int(params["chat_id"]), int(params["message_id"])
        return self._sent.get((chat_id, message_id)) or self._message(chat_id, "")

    def _api_sendPhoto(self, params: dict, files: dict) -> dict[str, Any]:
        data = _attached(params.get("photo"), files)
        return self._message(int(params["chat_id"]), "", photo=[_photo_size(data)])

    def _api_sendMediaGroup(self, params: dict, files: dict) -> list[dict[str, Any]]:
        chat_id = int(params["chat_id"])
        group = f"album-{time.monotonic_ns()}"
        return [
            self._message(
                chat_id,
                "",
                photo=[_photo_size(_attached(item["media"], files))],
                media_group_id=group,
            )
            for item in params["media"]
        ]

    def _api_sendDocument(self, params: dict, files: dict) -> dict[str, Any]:
        name, data = _attached_file(params.get("document"), files)
        document = {
            "file_id": f"sent-{time.monotonic_ns()}",
            "file_unique_id": f"s{time.monotonic_ns()}",
            "file_name": name,
            "file_size": len(data),
        }
        return self._message(int(params["chat_id"]), "", document=document)

    def _api_getFile(self, params: dict, files: dict) -> dict[str, Any]:
        file_id = str(params["file_id"])
        data = self._files.get(file_id, b"")
        return {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "file_size": len(data),
            "file_path": f"documents/{file_id}",
        }


# Helpers ---------------------------------------------------------------------------------


def _error(error_code: int, retry_after: int) -> dict[str, Any]:
    if error_code == 429:
        return {
            "ok": False,
            "error_code": 429,
            "description": f"Too Many Requests: retry after {retry_after}",
            "parameters": {"retry_after": retry_after},
        }
    return {"ok": False, "error_code": error_code, "description": "Bad Request: injected"}


def _user(user_id: int) -> dict[str, Any]:
    return {"id": user_id, "is_bot": False, "first_name": f"User{user_id}"}


def _bot_user() -> dict[str, Any]:
    return {"id": BOT_ID, "is_bot": True, "first_name": "Market Bot", "username": BOT_USERNAME}


def _chat(chat_id: int, chat_type: str) -> dict[str, Any]:
    if chat_type == "private":
        return {"id": chat_id, "type": "private", "first_name": f"User{chat_id}"}
    return {"id": chat_id, "type": chat_type, "title": "Shop team"}


def _attached(reference: Any, files: dict[str, tuple[str, bytes]]) -> bytes:
    return _attached_file(reference, files)[1]


def _attached_file(reference: Any, files: dict[str, tuple[str, bytes]]) -> tuple[str, bytes]:
    """The file behind an `attach://name` reference, or the single uploaded file."""
    if isinstance(reference, str) and reference.startswith("attach://"):
        return files[reference.removeprefix("attach://")]
    if len(files) == 1:
        return next(iter(files.values()))
    return "", b""


def _photo_size(png: bytes) -> dict[str, Any]:
    width, height = png_size(png)
    return {
        "file_id": f"photo-{time.monotonic_ns()}",
        "file_unique_id": f"p{time.monotonic_ns()}",
        "width": width,
        "height": height,
        "file_size": len(png),
    }


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height of a PNG, decoded in full; (0, 0) when the bytes are not a PNG."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return 0, 0
    # Decoding every pixel checks the chunks and the compressed stream, not just the header.
    pixels = matplotlib.image.imread(io.BytesIO(data), format="png")
    height, width = pixels.shape[:2]
    return width, height


def _decode(params: dict[str, str]) -> dict[str, Any]:
    decoded: dict[str, Any] = {}
    for key, value in params.items():
        if key in _TEXT_PARAMS:
            decoded[key] = value
            continue
        try:
            decoded[key] = json.loads(value)
        except (TypeError, ValueError):
            decoded[key] = value
    return decoded


def marketbot_environment(**settings: str) -> dict[str, str]:
    """This process's environment without any marketbot setting, plus `settings`."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TELEGRAM_", "MARKETBOT_", "ALLOWED_", "DATABASE_"))
    }
    return env | settings


def start_marketbot(
    fake: FakeTelegram, home: Path, *args: str, **settings: str
) -> subprocess.Popen:
    """Start the real `marketbot run` against `fake`, with its data and log under `home`.

    The environment is cleaned of the caller's marketbot settings; `settings` adds to it.
    The log goes to `home / "bot.log"`.
    """
    env = marketbot_environment(
        TELEGRAM_BOT_TOKEN=fake.token,
        TELEGRAM_API_BASE_URL=fake.base_url,
        MARKETBOT_DATA_DIR=str(home / "data"),
        **settings,
    )
    marketbot = Path(sys.executable).with_name("marketbot")
    with (home / "bot.log").open("w") as log:
        return subprocess.Popen(
            [str(marketbot), "run", *args], cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT
        )


def post_update(
    url: str, update: dict[str, Any], *, secret: str = "", patience: float = 30.0
) -> int:
    """POST one update to a webhook; return the HTTP status it answered with.

    Like Telegram, retry while nothing listens yet: a bot sets its webhook before its web
    server may be accepting connections.
    """
    request = urllib.request.Request(
        url,
        data=json.dumps(update).encode(),
        headers={"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": secret},
        method="POST",
    )
    deadline = time.monotonic() + patience
    while True:
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code
        except urllib.error.URLError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _parse_body(content_type: str, body: bytes) -> tuple[dict[str, Any], dict]:
    """Parse a JSON, form or multipart request body into (parameters, files)."""
    files: dict[str, tuple[str, bytes]] = {}
    if content_type.startswith("application/json"):
        return (json.loads(body) if body else {}), files
    if content_type.startswith("multipart/form-data"):
        parser = email.parser.BytesParser(policy=email.policy.HTTP)
        message = parser.parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
        fields: dict[str, str] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True) or b""
            if part.get_filename() is not None:
                files[name] = (part.get_filename(), payload)
            else:
                fields[name] = payload.decode("utf-8")
        return _decode(fields), files
    return _decode(dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))), files


def _handler_for(fake: FakeTelegram) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes; with Nagle's algorithm and delayed
        # ACKs that costs 40 ms a response, which would swamp what the benchmark measures.
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            prefix = f"/bot{fake.token}/"
            path = unquote(urlparse(self.path).path)
            if not path.startswith(prefix):
                self._reply(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
                return
            params, files = _parse_body(self.headers.get("Content-Type", ""), body)
            status, answer = fake.handle(path.removeprefix(prefix), params, files)
            self._reply(status, answer)

        def do_GET(self) -> None:
            prefix = f"/file/bot{fake.token}/"
            path = unquote(urlparse(self.path).path)
            data = fake.download(path.removeprefix(prefix)) if path.startswith(prefix) else None
            if data is None:
                self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")
                return
            self._send(HTTPStatus.OK, data, "application/octet-stream")

        def _reply(self, status: int, answer: Any) -> None:
            self._send(status, json.dumps(answer).encode(), "application/json")

        def _send(self, status: int, data: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            try:
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                # The bot hung up on a long poll while stopping; nobody is waiting for it.
                self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:
            return None

    return Handler
