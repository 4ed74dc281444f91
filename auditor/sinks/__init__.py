"""Sinks: where events and findings go (terminal, JSON, NDJSON, Markdown, Elasticsearch)."""
