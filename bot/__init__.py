"""The chat side of marketbot: Telegram adapter, local console, routing, rendering, schedules."""
