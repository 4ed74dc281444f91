"""Files that hold several kinds of lines: each line goes to the parser that reads it.

* ``docker logs`` of an nginx container: access lines (stdout) and error lines
  (stderr) in one stream, each perhaps after ``docker logs --timestamps``' stamp
  (RFC 3339 with nine fraction digits and ``Z``, which is taken off); the
  json-file driver's own lines ``{"log":"...\\n","stream":"stderr","time":...}``
  are unwrapped too;
* journal or syslog exports mixing programs: a framed line whose message is an
  nginx error or access line goes to that parser, any other framed line to the
  kernel parser (netfilter, conntrack, OOM...).

A line that fits none of these, or that its parser finds irrelevant, but that
carries a relevant mark (:mod:`auditor.parsers.markers`) is not understood
(LineError naming the mark), never dropped. :meth:`MixedParser.routes` counts
the lines handed to each kind, for the summary.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import ClassVar

from auditor.models import Event, Location
from auditor.parsers.base import LineError, LineParser, ParseContext
from auditor.parsers.kernel import KernelParser
from auditor.parsers.markers import NEEDLES, marker
from auditor.parsers.nginx_access import NginxAccessParser, looks_like_access
from auditor.parsers.nginx_error import NginxErrorParser, looks_like_error
from auditor.parsers.syslog_frame import Framer

_DOCKER_STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z ")
_KERNEL = "kernel"


class MixedParser(LineParser):
    """Several kinds in one file -> the events each kind's parser gives."""

    name: ClassVar[str] = "mixed"
    description: ClassVar[str] = (
        "several kinds in one file (docker logs of nginx, journal exports mixing programs): "
        "each line to the parser that reads it"
    )

    def __init__(self, ctx: ParseContext, path: str = "-") -> None:
        super().__init__(ctx, path)
        self.kernel = KernelParser(ctx, path)
        self.error = NginxErrorParser(ctx, path)
        self.access = NginxAccessParser(ctx, path)
        self.framer = Framer(ctx)
        self._routed: dict[str, int] = {}
        self._unwrapped = 0  # lines taken out of a wrapper or a framing
        self.needles = tuple(dict.fromkeys(
            (*self.kernel.needles, *self.error.needles, *self.access.needles, *NEEDLES)
        ))

    @classmethod
    def sniff(cls, head: Sequence[str]) -> float:
        probe = cls(ParseContext(), "-")
        kinds: dict[str, int] = {}
        lines = 0
        for line in head:
            if not line.strip():
                continue
            lines += 1
            try:
                kind, _ = probe.route(line)
            except LineError:
                continue
            if kind:
                kinds[kind] = kinds.get(kind, 0) + 1
        # Two kinds in one file (a stray line does not make a kind), or lines no single-kind
        # parser reads (docker's wrappers, nginx lines in a journal's or syslog's framing).
        several = sum(1 for n in kinds.values() if n > 1) > 1
        return 0.96 if lines and (several or probe._unwrapped) else 0.0

    def routes(self) -> Mapping[str, int]:
        return dict(sorted(self._routed.items()))

    def route(self, line: str) -> tuple[str, str]:
        """(kind, the text for its parser); kind "" when no parser reads the line."""
        text = line.rstrip("\r\n")
        if text.startswith('{"log":'):
            text = _docker_json(text)
            self._unwrapped += 1
        elif _DOCKER_STAMP.match(text):
            text = text[31:]
            self._unwrapped += 1
        if looks_like_error(text):
            return "nginx-error", text
        if self._is_access(text):
            return "nginx-access", text
        try:
            frame = self.framer.frame(text)
        except LineError:
            return "", text
        if frame is None:
            return "", text  # a journal separator
        if frame.data is None:
            msg = frame.message
            kind = "nginx-error" if looks_like_error(msg) else ""
            if kind or self._is_access(msg):
                self._unwrapped += 1
                return kind or "nginx-access", msg
        return _KERNEL, text

    def _is_access(self, text: str) -> bool:
        formats = self.access.formats
        if text.startswith("{"):
            if len(formats) > 1:  # the defaults: JSON only by its usual keys
                return looks_like_access(text)
            return formats[0].is_json and formats[0].match(text) is not None
        return any(f.variables and f.regex.match(text) for f in formats)

    def parse(self, line: str, location: Location) -> Event | None:
        kind, text = self.route(line)
        event = None
        if kind:
            self._routed[kind] = self._routed.get(kind, 0) + 1
            parser = {"nginx-error": self.error, "nginx-access": self.access}.get(kind, self.kernel)
            event = parser.parse(text, location)
        if event is None:
            mark = marker(line)
            if mark is not None:
                where = f"that the {kind} parser does not read" if kind else "of no known kind"
                raise LineError(f"relevant-looking line ({mark}) {where}")
        return event


def _docker_json(text: str) -> str:
    """The ``log`` of a docker json-file line, its newline taken off."""
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        raise LineError("invalid docker json-file line") from None
    log = doc.get("log") if isinstance(doc, dict) else None
    if not isinstance(log, str):
        raise LineError("docker json-file line without a 'log' text")
    return log.rstrip("\r\n")
