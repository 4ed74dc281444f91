"""The one small interface every log parser implements.

A parser is made per file (it may keep per-file state such as the inferred
year). The scanner offers it only the lines that contain one of its
``needles`` (cheap substring prefilter); an empty ``needles`` means every line.
``parse`` returns an Event, None for a line that is understood but irrelevant,
or raises :class:`LineError` for a line it cannot understand.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any, ClassVar

from auditor.models import Event, Location


class LineError(ValueError):
    """A line the parser was offered but could not understand."""


@dataclass(frozen=True)
class ParseContext:
    """What parsers need to know beyond the line itself."""

    timezone: tzinfo = UTC
    # Anchor for year inference: the file's mtime, or now.
    reference_time: datetime = field(default_factory=lambda: datetime.now(UTC))
    # Boot time, to turn dmesg's seconds-since-boot into instants.
    boot_time: datetime | None = None
    host_name: str | None = None
    # Parser options, e.g. {"log_format": "..."} for nginx access logs (the caller
    # resolves them: parsers open no file).
    options: dict[str, Any] = field(default_factory=dict)


class LineParser(ABC):
    """A parser for one kind of line-oriented log."""

    name: ClassVar[str]  # the --type name, e.g. "kernel", "nginx-error"
    description: ClassVar[str] = ""
    # Substrings at least one of which every relevant line contains.
    needles: tuple[bytes, ...] = ()
    # Every event.action this parser can emit; each must appear in an annotated sample.
    patterns: ClassVar[tuple[str, ...]] = ()

    def __init__(self, ctx: ParseContext, path: str = "-") -> None:
        self.ctx = ctx
        self.path = path

    @classmethod
    @abstractmethod
    def sniff(cls, head: Sequence[str]) -> float:
        """How sure (0..1) this parser is that a file starting with ``head`` is its kind."""

    @abstractmethod
    def parse(self, line: str, location: Location) -> Event | None:
        """One line -> an Event, None (irrelevant), or LineError (not understood)."""

    def routes(self) -> Mapping[str, int]:
        """Lines handed on, per kind, by a parser that routes lines to others (else empty)."""
        return {}
