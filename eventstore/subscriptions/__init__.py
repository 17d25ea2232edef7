"""Subscriptions: named, durable consumers of the log that deliver matching events to a sink.

Pure parts: `config` (validation), `filters`, `templates`. I/O: `sinks` (webhook,
Redis), `delivery` (the engine, a supervised worker), `control` (admin operations).
"""
