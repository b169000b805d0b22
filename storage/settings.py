"""Settings for every part of marketbot, read from the environment and `.env`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

IdList = Annotated[list[int], NoDecode]


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "marketbot"


def _alias(name: str) -> AliasChoices:
    return AliasChoices(name, name.lower())


class Settings(BaseSettings):
    """All settings, validated once at start-up. Names match `.env.example`."""

    model_config = SettingsConfigDict(
        env_file=".env", env_ignore_empty=True, extra="ignore", populate_by_name=True
    )

    telegram_bot_token: SecretStr | None = Field(
        None, validation_alias=_alias("TELEGRAM_BOT_TOKEN")
    )
    telegram_api_base_url: str = Field(
        "https://api.telegram.org/bot", validation_alias=_alias("TELEGRAM_API_BASE_URL")
    )
    telegram_api_file_url: str | None = Field(
        None, validation_alias=_alias("TELEGRAM_API_FILE_URL")
    )
    database_url: str | None = Field(None, validation_alias=_alias("DATABASE_URL"))
    data_dir: Path = Field(
        default_factory=_default_data_dir, validation_alias=_alias("MARKETBOT_DATA_DIR")
    )
    allowed_user_ids: IdList = Field(
        default_factory=list, validation_alias=_alias("ALLOWED_USER_IDS")
    )
    allowed_chat_ids: IdList = Field(
        default_factory=list, validation_alias=_alias("ALLOWED_CHAT_IDS")
    )
    allow_everyone: bool = Field(False, validation_alias=_alias("MARKETBOT_ALLOW_EVERYONE"))
    max_upload_mb: float = Field(50, gt=0, validation_alias=_alias("MARKETBOT_MAX_UPLOAD_MB"))
    max_rows: int = Field(5_000_000, gt=0, validation_alias=_alias("MARKETBOT_MAX_ROWS"))
    tool_time_limit_s: float = Field(
        120, gt=0, validation_alias=_alias("MARKETBOT_TOOL_TIME_LIMIT")
    )
    memory_budget_mb: int = Field(
        1024, ge=64, validation_alias=_alias("MARKETBOT_MEMORY_BUDGET_MB")
    )
    workers: int = Field(
        default_factory=lambda: max(1, os.cpu_count() or 1),
        ge=1,
        validation_alias=_alias("MARKETBOT_WORKERS"),
    )
    timezone: str = Field("UTC", validation_alias=_alias("MARKETBOT_TIMEZONE"))
    log_level: str = Field("INFO", validation_alias=_alias("MARKETBOT_LOG_LEVEL"))

    @field_validator("allowed_user_ids", "allowed_chat_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.replace(";", ",").split(",") if part.strip()]
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown time zone {value!r}; use an IANA name like Europe/Berlin"
            ) from exc
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("use one of DEBUG, INFO, WARNING, ERROR")
        return level

    @property
    def db_url(self) -> str:
        """The database URL: `DATABASE_URL`, or an SQLite file in the data directory."""
        return self.database_url or f"sqlite:///{self.data_dir / 'marketbot.db'}"

    @property
    def file_url(self) -> str:
        """Where bot files are downloaded from; derived from the API URL when unset."""
        if self.telegram_api_file_url:
            return self.telegram_api_file_url
        base = self.telegram_api_base_url.rstrip("/")
        head, _, tail = base.rpartition("/")
        return f"{head}/file/{tail}"

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


class SettingsError(Exception):
    """A setting with a wrong value; the message names the setting."""


def load_settings(**overrides: Any) -> Settings:
    """Load and validate settings, turning validation errors into one readable message."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "?"
            problems.append(f"{field.upper()}: {error['msg']}")
        raise SettingsError("Invalid settings:\n  " + "\n  ".join(problems)) from exc
