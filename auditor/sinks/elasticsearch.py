"""Shipping documents to Elasticsearch: templates, write targets, bulk with retries.

* :func:`make_client` builds the official client from :class:`~auditor.config.EsConfig`
  (API key or basic auth, CA file, verification on); the client's own retries are off,
  :class:`EsSink` retries with exponential backoff and full jitter on 429, 5xx,
  timeouts and connection errors (each retry logged as a warning), never on 401/403:
  refused credentials stop the run at once (``refused``).
* :meth:`EsSink.setup` installs the component and index templates, then makes the
  write targets: data streams where the server has them, else an index
  ``<name>-000001`` behind the write alias ``<name>``.
* :meth:`EsSink.send` ships documents with ``op_type=create`` through the client's
  bulk helper. Every id is deterministic, so a 409 means "already there" and counts
  as delivered. A document rejected for itself (mapping error) goes to the
  dead-letter file with the reason and does not hold back the others.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from elastic_transport import SerializationError, TransportError
from elasticsearch import ApiError, Elasticsearch, helpers

from auditor.config import EsConfig
from auditor.sinks.es_docs import Window, finding_doc
from auditor.sinks.es_templates import (
    KINDS,
    TEMPLATE_VERSION,
    StreamNames,
    component_templates,
    index_template,
    template_name,
)
from auditor.sinks.spool import Doc
from auditor.sinks.text import dumps

__all__ = ["DeadLetter", "EsSink", "SendResult", "Window", "credentials_refused", "finding_doc",
           "make_client"]

log = logging.getLogger("auditor.elasticsearch")

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
CREDENTIAL_STATUS = frozenset({401, 403})


def credentials_refused(exc: Exception) -> str | None:
    """The reason when ``exc`` is the server refusing our credentials (401/403), else None."""
    if isinstance(exc, ApiError) and exc.status_code in CREDENTIAL_STATUS:
        what = "not accepted" if exc.status_code == 401 else "not allowed to do this"
        return (f"Elasticsearch refused the credentials (HTTP {exc.status_code}: {what}); "
                "check api_key/username/password and the key's privileges")
    return None


def make_client(cfg: EsConfig) -> Elasticsearch:
    """The official client for ``cfg``; secrets are revealed only here, to the client."""
    if not cfg.hosts:
        raise ValueError("no Elasticsearch URL: set elasticsearch.hosts, AUDITOR_ES_URL or --es")
    kwargs: dict[str, Any] = {
        "request_timeout": cfg.timeout,
        "max_retries": 0,
        "retry_on_timeout": False,
        "verify_certs": cfg.verify,
    }
    if cfg.ca_file:
        kwargs["ca_certs"] = cfg.ca_file
    if cfg.api_key is not None:
        kwargs["api_key"] = cfg.api_key.reveal()
    elif cfg.username and cfg.password is not None:
        kwargs["basic_auth"] = (cfg.username, cfg.password.reveal())
    return Elasticsearch(list(cfg.hosts), **kwargs)


class DeadLetter:
    """NDJSON file of documents the server refused for themselves, with the reason.

    Bounded: a record that would take the file past ``max_bytes`` first rotates it to
    ``<path>.1`` (replacing the one before, whose records are counted in ``dropped``
    and warned about), so at most twice ``max_bytes`` stay on disk. A record larger
    than ``max_bytes`` by itself is kept without its document (``document_omitted``).
    """

    def __init__(self, path: str | os.PathLike[str], max_bytes: int = 64 << 20) -> None:
        self.path = Path(path)
        self.rotated = self.path.with_name(self.path.name + ".1")
        self.max_bytes = max(int(max_bytes), 1024)
        self.count = 0  # records written by this process
        self.dropped = 0  # older records discarded by rotation
        self.omitted = 0  # records written without their (too large) document

    def _record(self, doc: Doc, index: str, status: int, reason: str, now: str) -> bytes:
        rec = {"@timestamp": now, "kind": doc.kind, "_index": index, "_id": doc.id,
               "status": status, "reason": reason}
        head = dumps(rec)[:-1].encode("utf-8")
        line = head + b',"document":' + doc.source + b"}\n"
        if len(line) > self.max_bytes:
            self.omitted += 1
            line = head + b',"document_omitted":true,"document_bytes":%d}\n' % len(doc.source)
        return line

    def _rotate(self) -> None:
        try:
            with open(self.rotated, "rb") as fh:
                lost = sum(1 for _ in fh)
        except FileNotFoundError:
            lost = 0
        os.replace(self.path, self.rotated)
        if lost:
            self.dropped += lost
            log.warning("dead-letter file %s reached %d bytes: rotated, %d older records "
                        "dropped", self.path, self.max_bytes, lost)

    def write(self, entries: Iterable[tuple[Doc, str, int, str]]) -> None:
        """``(doc, index, status, reason)`` entries, appended and fsynced."""
        now = datetime.now(UTC).isoformat()
        lines = [self._record(doc, index, status, reason, now)
                 for doc, index, status, reason in entries]
        if not lines:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            size = 0
        batch: list[bytes] = []
        for line in lines:
            if size + len(line) > self.max_bytes and (size or batch):
                self._append(batch)
                batch, size = [], 0
                self._rotate()
            batch.append(line)
            size += len(line)
        self._append(batch)
        self.count += len(lines)

    def _append(self, lines: list[bytes]) -> None:
        if not lines:
            return
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            view = memoryview(b"".join(lines))
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)


@dataclass
class SendResult:
    """What became of the documents of one :meth:`EsSink.send` call."""

    created: int = 0
    duplicates: int = 0  # 409: already indexed by an earlier run or attempt
    dead: int = 0
    retries: int = 0
    undelivered: list[Doc] = field(default_factory=list)  # to be spooled
    error: str | None = None

    def add(self, other: SendResult) -> None:
        self.created += other.created
        self.duplicates += other.duplicates
        self.dead += other.dead
        self.retries += other.retries
        self.undelivered.extend(other.undelivered)
        self.error = other.error or self.error


def _reason(item: dict[str, Any]) -> str:
    err = item.get("error")
    if isinstance(err, dict):
        text = f"{err.get('type', 'error')}: {err.get('reason', '')}"
        cause = err.get("caused_by")
        if isinstance(cause, dict):
            text += f" (caused by {cause.get('type', '')}: {cause.get('reason', '')})"
        return text
    return str(err or f"status {item.get('status')}")


def _kwargs(body: dict[str, Any]) -> dict[str, Any]:
    """A template body as client keyword arguments (``_meta`` is ``meta``)."""
    return {("meta" if k == "_meta" else k): v for k, v in body.items()}


def _transient(exc: Exception) -> bool:
    if isinstance(exc, ApiError):
        return exc.status_code in RETRY_STATUS
    return isinstance(exc, TransportError | SerializationError | OSError)


class EsSink:
    """One run's connection to Elasticsearch; gives up (``down``) after exhausting retries."""

    def __init__(
        self,
        client: Elasticsearch,
        names: StreamNames,
        dead_letter: DeadLetter,
        cfg: EsConfig,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.names = names
        self.dead_letter = dead_letter
        self.cfg = cfg
        self.sleep = sleep
        self.down: str | None = None  # reason, once the server is considered unreachable
        self.refused: str | None = None  # reason, once the server refused our credentials
        self.mode: str | None = None  # "data_stream" | "alias"
        self._index = {k: names.name(k) for k in KINDS}
        self._head = {k: b'{"create":{"_index":"%s","_id":"' % v.encode()
                      for k, v in self._index.items()}

    # -- retries -------------------------------------------------------------------
    def _backoff(self, attempt: int) -> float:
        cap = min(self.cfg.backoff_max, self.cfg.backoff_initial * (2 ** (attempt - 1)))
        return random.uniform(cap / 2, cap)

    def _wait(self, what: str, error: str, attempt: int) -> None:
        """Sleep before retry ``attempt``, saying so (stderr of ``audit``: see its logging)."""
        delay = self._backoff(attempt)
        log.warning("%s: %s; retry %d of %d in %.1f s", what, error, attempt,
                    self.cfg.max_retries, delay)
        self.sleep(delay)

    def _call(self, what: str, func: Callable[[], Any]) -> Any:
        attempt = 0
        while True:
            try:
                return func()
            except Exception as exc:
                refused = credentials_refused(exc)
                if refused:  # retrying cannot help
                    self.refused = self.down = refused
                    raise
                if not _transient(exc):
                    raise
                attempt += 1
                if attempt > self.cfg.max_retries:
                    self.down = (f"{what}: gave up after {self.cfg.max_retries} retries: "
                                 f"{type(exc).__name__}: {exc}")
                    raise
                self._wait(what, f"{type(exc).__name__}: {exc}", attempt)

    # -- setup ---------------------------------------------------------------------
    def setup(self) -> str:
        """Install templates if missing or older, create write targets; returns the mode."""
        cluster, indices = self.client.cluster, self.client.indices
        for name, body in component_templates().items():
            put = partial(cluster.put_component_template, name=name, **_kwargs(body))
            self._call("templates", put)
        want_ds = self._detect_data_streams()
        for kind in KINDS:
            kw = _kwargs(index_template(self.names, kind, want_ds))
            self._call("templates", partial(indices.put_index_template, name=template_name(kind),
                                            **kw))
        if want_ds:
            self.mode = "data_stream"
            return self.mode
        for kind in KINDS:
            self._ensure_alias(self._index[kind])
        self.mode = "alias"
        return self.mode

    def _detect_data_streams(self) -> bool:
        """True when the server has data streams (and ours are or can be data streams)."""
        name = self._index["resets"]
        quiet = self.client.options(ignore_status=404)
        exists = self._call("probe", lambda: quiet.indices.exists_alias(name=name))
        if exists:
            return False  # created earlier as index + alias
        try:
            info = self._call("probe", lambda: quiet.indices.get(index=name))
        except ApiError:
            info = None
        if info is not None and info.meta.status == 200 and isinstance(info.body, dict):
            # an existing data stream resolves to backing indices ".ds-..."; a plain index to itself
            return not any(str(k) == name for k in info.body)
        # nothing there yet: ask for a data stream with a throw-away template of ours
        probe = f"{self.names.type('resets')}-auditor.probe-{self.names.namespace}"
        body: dict[str, Any] = {"index_patterns": [probe], "data_stream": {}, "priority": 1,
                "template": {"mappings": {"properties": {"@timestamp": {"type": "date"}}}},
                "_meta": {"managed_by": "auditor", "version": TEMPLATE_VERSION}}
        try:
            self._call("probe", lambda: self.client.indices.put_index_template(
                name="auditor.probe", **_kwargs(body)))
            self._call("probe", lambda: self.client.indices.create_data_stream(name=probe))
        except ApiError as exc:
            log.info("no data streams (%s): using indices with aliases", exc.status_code)
            self._cleanup_probe()
            return False
        self._cleanup_probe(probe)
        return True

    def _cleanup_probe(self, stream: str | None = None) -> None:
        quiet = self.client.options(ignore_status=(400, 404, 405))
        if stream:
            self._call("probe", lambda: quiet.indices.delete_data_stream(name=stream))
        self._call("probe", lambda: quiet.indices.delete_index_template(name="auditor.probe"))

    def _ensure_alias(self, alias: str) -> None:
        quiet = self.client.options(ignore_status=404)
        if self._call("setup", lambda: quiet.indices.exists_alias(name=alias)):
            return
        if self._call("setup", lambda: quiet.indices.exists(index=alias)):
            return  # a plain index of that name: write to it directly
        body = {alias: {"is_write_index": True}}
        try:
            self._call("setup", lambda: self.client.indices.create(
                index=f"{alias}-000001", aliases=body))
        except ApiError as exc:
            if "already_exists" not in str(exc):
                raise

    # -- bulk ----------------------------------------------------------------------
    def _expand(self, doc: Doc) -> tuple[bytes, bytes]:
        """The bulk action line, already JSON (the helper passes bytes through unchanged)."""
        return self._head[doc.kind] + doc.id.encode() + b'"}}', doc.source

    def _bulk_once(self, docs: Sequence[Doc]) -> list[dict[str, Any]]:
        items = []
        for _ok, info in helpers.streaming_bulk(
            self.client,
            docs,  # type: ignore[arg-type]
            chunk_size=len(docs) + 1,
            max_chunk_bytes=1 << 30,
            expand_action_callback=self._expand,  # type: ignore[arg-type]
            raise_on_error=False,
            raise_on_exception=True,
            max_retries=0,
        ):
            _op, item = next(iter(info.items()))
            items.append(item)
        if len(items) != len(docs):
            raise SerializationError(f"bulk answered {len(items)} items for {len(docs)} documents")
        return items

    def send(self, docs: Sequence[Doc]) -> SendResult:
        """Deliver ``docs`` (one bulk request, then retries of what needs them)."""
        result = SendResult()
        pending = list(docs)
        if self.down:
            result.undelivered, result.error = pending, self.down
            return result
        attempt = 0
        error = ""
        while pending:
            try:
                items = self._bulk_once(pending)
            except Exception as exc:
                refused = credentials_refused(exc)
                if refused:
                    self.refused = self.down = refused
                    result.undelivered, result.error = pending, refused
                    return result
                if not _transient(exc):
                    self.down = f"bulk: {type(exc).__name__}: {exc}"
                    result.undelivered, result.error = pending, self.down
                    return result
                items = []
                error = f"{type(exc).__name__}: {exc}"
            retry: list[Doc] = []
            dead: list[tuple[Doc, str, int, str]] = []
            for doc, item in zip(pending, items, strict=False):
                status = int(item.get("status", 500))
                if status < 300:
                    result.created += 1
                elif status == 409:
                    result.duplicates += 1
                elif status in RETRY_STATUS:
                    retry.append(doc)
                    error = f"status {status}: {_reason(item)}"
                else:
                    dead.append((doc, str(item.get("_index", "")), status, _reason(item)))
            if not items:
                retry = pending
            self.dead_letter.write(dead)
            result.dead += len(dead)
            pending = retry
            if pending:
                attempt += 1
                result.retries += 1
                if attempt > self.cfg.max_retries:
                    self.down = f"bulk: gave up after {attempt} attempts: {error}"
                    result.undelivered, result.error = pending, self.down
                    return result
                self._wait("bulk", error, attempt)
        return result

    def refresh(self) -> None:
        quiet = self.client.options(ignore_status=(404, 405))
        for kind in KINDS:
            quiet.indices.refresh(index=self._index[kind])
