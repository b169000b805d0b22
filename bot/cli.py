"""The `marketbot` command: run the bot, the local console, or load and generate data."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from storage.settings import Settings, SettingsError, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "demo-data":
        # Needs no settings: it only writes a file.
        from storage.demo import write_demo_csv

        write_demo_csv(args.path, rows=args.rows, seed=args.seed)
        print(f"wrote {args.rows:,} order lines to {args.path}")
        return 0
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    console = args.command == "shell" or (
        args.command == "run" and settings.telegram_bot_token is None
    )
    # In the console, log lines would interleave with the chat; they go to a file there.
    configure_logging(settings, log_file=settings.data_dir / "console.log" if console else None)
    return args.handler(settings, args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="marketbot", description=__doc__)
    commands = parser.add_subparsers(dest="command")

    run = commands.add_parser("run", help="run the Telegram bot (the console without a token)")
    run.add_argument("--webhook", metavar="URL", help="receive updates on this public URL")
    run.add_argument("--port", type=int, default=8443, help="local port for the webhook")
    run.set_defaults(handler=_run)

    shell = commands.add_parser("shell", help="chat with the bot in this terminal")
    shell.add_argument("--chat", type=int, default=1, help="chat id to act as (default 1)")
    shell.add_argument("--demo", action="store_true", help="load demo data first")
    shell.set_defaults(handler=_shell)

    ingest = commands.add_parser("ingest", help="load an order export from a script")
    ingest.add_argument("path", type=Path)
    ingest.add_argument("--name", help="dataset name (default: the file name)")
    ingest.add_argument("--chat", type=int, default=1, help="owner chat id (default 1)")
    ingest.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="ROLE=COLUMN",
        help="override a detected column role, for example --map product=Description",
    )
    ingest.set_defaults(handler=_ingest)

    demo = commands.add_parser("demo-data", help="write a realistic synthetic shop export")
    demo.add_argument("path", type=Path)
    demo.add_argument("--rows", type=int, default=50_000)
    demo.add_argument("--seed", type=int, default=7)
    parser.set_defaults(command="run", handler=_run)
    return parser


def configure_logging(settings: Settings, *, log_file: Path | None = None) -> None:
    """One line an event, to standard error or, for the console, to `log_file`."""
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.FileHandler(log_file, encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        handlers=[handler],
    )
    # The HTTP client logs every request and Alembic every migration step at INFO, which
    # would drown the bot's own one line per event.
    for noisy in ("httpx", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _run(settings: Settings, args: argparse.Namespace) -> int:
    if settings.telegram_bot_token is None:
        print(
            "No TELEGRAM_BOT_TOKEN is set, so marketbot starts its local console on demo data.\n"
            "To run the Telegram bot, put TELEGRAM_BOT_TOKEN=<token from @BotFather> in .env.",
            file=sys.stderr,
        )
        from bot.console import run_shell

        return run_shell(settings, chat_id=1, demo=True)
    from bot.telegram_app import run_bot

    return run_bot(settings, webhook_url=args.webhook, port=args.port)


def _shell(settings: Settings, args: argparse.Namespace) -> int:
    from bot.console import run_shell

    return run_shell(settings, chat_id=args.chat, demo=args.demo)


def _ingest(settings: Settings, args: argparse.Namespace) -> int:
    from storage.errors import MarketbotError
    from storage.ingest import ingest_path, parse_role_overrides
    from storage.store import open_store

    try:
        overrides = parse_role_overrides(args.map)
        engine = open_store(settings)
        summary = ingest_path(
            engine,
            args.path,
            chat_id=args.chat,
            name=args.name,
            overrides=overrides,
            settings=settings,
        )
    except MarketbotError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 1
    print("\n".join(summary.lines()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
