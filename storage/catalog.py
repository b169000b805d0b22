"""Catalog tables: datasets, subscriptions, chat settings and the run log.

The schema is created and upgraded by the Alembic migrations in `storage/migrations`;
these definitions are what the code queries with.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

datasets = Table(
    "datasets",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("chat_id", BigInteger, nullable=False, index=True),
    Column("name", String(100), nullable=False),
    Column("table_name", String(100), nullable=False, unique=True),
    Column("source_file", String(255), nullable=False, default=""),
    # orders (one line per order line), baskets (basket id + item), onehot, or table
    Column("kind", String(20), nullable=False),
    Column("row_count", Integer, nullable=False, default=0),
    # role -> column name, for example {"order_id": "InvoiceNo", "product": "Description"}
    Column("roles", JSON, nullable=False, default=dict),
    # column name -> stored type (integer, real, timestamp, text, boolean)
    Column("columns", JSON, nullable=False, default=dict),
    # what ingestion counted: rows kept and dropped by reason, orders, customers, ...
    Column("stats", JSON, nullable=False, default=dict),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("chat_id", "name", name="uq_datasets_chat_name"),
)

chat_settings = Table(
    "chat_settings",
    metadata,
    Column("chat_id", BigInteger, primary_key=True),
    Column("language", String(8), nullable=False, default="en"),
    Column("timezone", String(64), nullable=True),
    Column(
        "active_dataset_id",
        Integer,
        ForeignKey("datasets.id", ondelete="SET NULL"),
        nullable=True,
    ),
)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("chat_id", BigInteger, nullable=False, index=True),
    # "daily HH:MM" or "weekly DOW HH:MM", local to `timezone`
    Column("schedule", String(40), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("tool", String(40), nullable=False),
    Column("params", JSON, nullable=False, default=dict),
    Column("dataset_id", Integer, ForeignKey("datasets.id", ondelete="CASCADE"), nullable=True),
    Column("last_run_at", DateTime(timezone=True), nullable=True),
    Column("last_status", String(20), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

run_log = Table(
    "run_log",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("chat_id", BigInteger, nullable=False, index=True),
    Column("user_id", BigInteger, nullable=True),
    Column("tool", String(40), nullable=False),
    Column("params", JSON, nullable=False, default=dict),
    Column("dataset_id", Integer, nullable=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("duration_s", Float, nullable=False, default=0.0),
    # ok, error, timeout, cancelled
    Column("outcome", String(20), nullable=False),
    Column("error_ref", String(20), nullable=True),
    Column("detail", Text, nullable=True),
)
