"""Secrets taken out of what a bundle holds, line by line, before it is written.

Redacted: values of authorization and cookie headers (``proxy_set_header
Authorization "Basic ..."``, ``Cookie: ...``), passwords in URLs
(``http://user:pass@host``), secret options and variables on command lines and
in nginx parameters (``--password=...``, ``DB_PASSWORD=...``, ``fastcgi_param
API_TOKEN ...``) and whole ``-----BEGIN ... PRIVATE KEY-----`` blocks. A line
keeps its number (a key block keeps its line count), so evidence lines stay
valid; each redaction is recorded by file, line and kind, never with the secret.

Part of the standalone collector: standard library only, Python 3.9.
"""

from __future__ import annotations

import re

MARK = "REDACTED"
# Records kept per file and kind; the rest are counted.
RECORD_LINES = 20
_SECRET_WORD = r"(?:password|passwd|passphrase|secret|token|api[-_]?key|access[-_]?key)"
_HEADER_NAME = r"(?:authorization|proxy-authorization|cookie|set-cookie|x-api-key|x-auth-token)"
_HEADER_DIRECTIVE = re.compile(
    r"(?i)\b((?:proxy|grpc|more)_set_headers?\s+[\"']?|add_header\s+[\"']?|\w+_param\s+[\"']?)"
    r"(" + _HEADER_NAME + r"[\"']?\s+[\"']?)([^\"';\r\n]+)"
)
_HEADER_FIELD = re.compile(r"(?i)\b(" + _HEADER_NAME + r":[ \t]*)([^\"';\r\n]+)")
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^/\s:@\"'<>]+:)([^/\s@\"'<>]+)(@)")
_OPTION = re.compile(r"(?i)(\s--?[\w\-]*" + _SECRET_WORD + r"[\w\-]*(?:=|\s+))([^\s\"';]+)")
_ASSIGNMENT = re.compile(r"(?i)\b(\w*" + _SECRET_WORD + r"\w*=)([^\s\"';&]+)")
_PARAM = re.compile(
    r"(?i)^(\s*\w+_(?:param|set_header)\s+\S*" + _SECRET_WORD + r"\S*\s+)([^;\r\n]+)"
)
_KEY_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")
_KEY_END = re.compile(r"-----END [A-Z0-9 ]*PRIVATE KEY-----")
# Only lines holding one of these (ASCII-lowercased) get a closer look.
KEYWORDS = (
    "authorization", "cookie", "x-api-key", "x-auth-token", "passw", "passphrase", "secret",
    "token", "api_key", "api-key", "apikey", "access_key", "access-key", "private key", "@",
)
ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_PATTERNS = (
    (_HEADER_DIRECTIVE, "authorization-header", 3),
    (_HEADER_FIELD, "authorization-header", 2),
    (_URL_PASSWORD, "url-password", 2),
    (_PARAM, "secret-parameter", 2),
    (_OPTION, "command-line-secret", 2),
    (_ASSIGNMENT, "secret-assignment", 2),
)


class Redactor:
    """Redacts the lines of one file in order; ``records`` says where, by kind."""

    def __init__(self, rel: str) -> None:
        self.rel = rel
        self.line_no = 0
        self.in_key = False
        self.counts: dict[str, int] = {}
        self.lines: dict[str, list[int]] = {}

    def _note(self, kind: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        seen = self.lines.setdefault(kind, [])
        if len(seen) < RECORD_LINES:
            seen.append(self.line_no)

    def line(self, text: str) -> str:
        """One line (with or without its newline), redacted."""
        self.line_no += 1
        end = "\n" if text.endswith("\n") else ""
        if self.in_key:
            if _KEY_END.search(text):
                self.in_key = False
            return end
        if _KEY_BEGIN.search(text):
            self._note("private-key")
            self.in_key = not _KEY_END.search(text)
            return f"-----{MARK} PRIVATE KEY-----" + end
        for pattern, kind, group in _PATTERNS:
            text = pattern.sub(lambda m, k=kind, g=group: self._sub(m, k, g), text)  # type: ignore[misc]
        return text

    def _sub(self, m: re.Match[str], kind: str, group: int) -> str:
        value = m.group(group)
        if value.strip().startswith("$") or value.strip() in ("", MARK):
            return m.group(0)  # an nginx variable or already redacted: no secret here
        self._note(kind)
        start, end = m.span(group)
        whole = m.group(0)
        return whole[: start - m.start()] + MARK + whole[end - m.start() :]

    def chunk(self, text: str) -> str:
        """Whole lines at once; only lines holding a :data:`KEYWORDS` word (and the lines of
        a key block) are looked at, the rest are only counted."""
        low = text.translate(ASCII_LOWER)  # same length as text, unlike str.lower()
        starts: set[int] = set()
        for word in KEYWORDS:
            at = low.find(word)
            while at != -1:
                starts.add(low.rfind("\n", 0, at) + 1)
                at = low.find(word, at + len(word))
        if self.in_key:
            starts.add(0)
        out: list[str] = []
        done = 0  # text[:done] is handled; self.line_no counts its lines
        for start in sorted(starts):
            if start < done:
                continue
            self.line_no += text.count("\n", done, start)
            out.append(text[done:start])
            done = start
            while done < len(text):
                end = text.find("\n", done) + 1 or len(text)
                out.append(self.line(text[done:end]))
                done = end
                if not self.in_key:
                    break
        self.line_no += text.count("\n", done)
        out.append(text[done:])
        return "".join(out)

    @property
    def records(self) -> list[dict[str, object]]:
        return [
            {"path": self.rel, "kind": kind, "lines": self.lines[kind], "count": count}
            for kind, count in sorted(self.counts.items())
        ]


def redact_text(text: str, rel: str) -> tuple[str, list[dict[str, object]]]:
    """``text`` with its secrets replaced, and the records of what was."""
    red = Redactor(rel)
    return red.chunk(text), red.records
