"""The scheduled audit job: new log lines -> events -> findings -> Elasticsearch, exactly once.

Order of one run (a crash between any two steps loses and duplicates nothing):

1. load the state (first run: fix the window start durably);
2. send the spool left by an earlier outage; a segment is deleted once acknowledged;
3. read the host's rules, limits and counters through the same pipeline as
   ``auditor diagnose`` (live, or the bundle ``source`` names); counters become a
   window since the previous run;
4. read what is new in every input (resuming at saved offsets, following rotation),
   ship reset events in bulk chunks as they stream; what cannot be delivered is
   spooled (fsynced) instead;
5. diagnose (the same :class:`~auditor.pipeline.diagnosis.Diagnosis` as ``diagnose``),
   ship findings; ship the run's snapshot (limits, counter deltas, ruleset);
6. write the new state atomically — only now, after everything was acknowledged
   by Elasticsearch or is safe in the spool.

Every document id is deterministic, so repeating steps 2-4 after a crash only
produce 409 answers, which count as delivered.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from auditor.commands._audit_snapshot import HostSnapshot, read_host, snapshot_body
from auditor.config import AuditConfig, InputConfig
from auditor.correlate.scoring import Query
from auditor.parsers import FALLBACK, detect, registry, why_unrecognised
from auditor.parsers.base import LineParser, ParseContext
from auditor.pipeline.diagnosis import Diagnosis, input_zone
from auditor.pipeline.evidence import rule_moves
from auditor.pipeline.logs import file_context
from auditor.sinks.elasticsearch import DeadLetter, EsSink, SendResult, make_client
from auditor.sinks.es_docs import DocBuilder, Window
from auditor.sinks.es_templates import StreamNames
from auditor.sinks.spool import Doc, Spool
from auditor.sources.checkpoint import AuditState, FileState, load_checkpoint, save_checkpoint
from auditor.sources.files import SourceError, read_head
from auditor.sources.follow import finished, plan_input, read_plan
from auditor.sources.journal import JournalReader
from auditor.sources.scan import ScanStats
from auditor.timeutil import parse_duration, parse_timezone


@dataclass
class AuditReport:
    """What one run did, for the summary line and the exit code."""

    files: list[ScanStats] = field(default_factory=list)
    events: int = 0
    older_than_since: int = 0
    findings: int = 0
    sent: SendResult = field(default_factory=SendResult)
    spooled: int = 0
    spool_sent: int = 0
    dropped: int = 0
    mode: str | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    dry_run: bool = False
    by_kind: dict[str, int] = field(default_factory=dict)
    delivery: str | None = None  # "refused" (credentials) or "unreachable": nothing got through

    @property
    def ok(self) -> bool:
        return not self.problems


class _Shipper:
    """Buffers documents into bulk chunks; sends them, or spools what could not go."""

    def __init__(self, sink: EsSink | None, spool: Spool | None, cfg: AuditConfig,
                 report: AuditReport) -> None:
        self.sink, self.spool, self.report = sink, spool, report
        self.max_docs, self.max_bytes = cfg.es.bulk_docs, cfg.es.bulk_bytes
        self.buf: list[Doc] = []
        self.size = 0

    def add(self, doc: Doc) -> None:
        self.report.by_kind[doc.kind] = self.report.by_kind.get(doc.kind, 0) + 1
        self.buf.append(doc)
        self.size += len(doc.source) + 100
        if len(self.buf) >= self.max_docs or self.size >= self.max_bytes:
            self.flush()

    def flush(self) -> None:
        docs, self.buf, self.size = self.buf, [], 0
        if not docs or (self.sink is None and self.spool is None):
            return  # dry run
        undelivered = docs
        if self.sink is not None:
            result = self.sink.send(docs)
            self.report.sent.add(result)
            undelivered = result.undelivered
        if undelivered and self.spool is not None:
            self.report.dropped += self.spool.append(undelivered)
            self.report.spooled += len(undelivered)


def _drain(sink: EsSink, spool: Spool, report: AuditReport, chunk: int) -> None:
    """Send the spool, oldest segment first; keep a segment until all of it is delivered."""
    for seg in spool.segments():
        if sink.down:
            return
        docs = list(spool.read(seg))
        left: list[Doc] = []
        for i in range(0, len(docs), chunk):
            result = sink.send(docs[i : i + chunk])
            report.spool_sent += result.created + result.duplicates
            report.sent.dead += result.dead
            left.extend(result.undelivered)
        if left:
            return  # keep the segment whole: resending it later only yields 409s
        spool.remove(seg)


def _parser_for(inp: InputConfig, path: str, parsers: Mapping[str, type[LineParser]]
                ) -> tuple[type[LineParser] | None, str | None]:
    """The parser for one file, and a note when its kind was not recognised (it is then
    read line by line by the routing parser, as ``parse`` does)."""
    if inp.type != "auto":
        return parsers.get(inp.type), None
    try:
        head = read_head(path)
    except (SourceError, OSError, EOFError) as exc:
        return None, f"{path}: cannot read ({exc})"
    cls = detect(head)
    if cls is not None:
        return cls, None
    return parsers.get(FALLBACK), f"{path}: kind not recognised: {why_unrecognised(head)}"


def _log_inputs(cfg: AuditConfig, snap: HostSnapshot) -> tuple[InputConfig, ...]:
    """The configured inputs; with a ``source`` and none configured, the source's logs
    (named by their path inside it, so that document ids do not depend on where it lies)."""
    if cfg.inputs or cfg.source is None or snap.inputs is None:
        return cfg.inputs
    root = snap.inputs.root
    return tuple(
        InputConfig(a.path, a.kind, os.path.relpath(a.path, root) if root else a.path)
        for a in snap.inputs.logs()
    )


class AuditBusy(OSError):
    """Another audit holds the state's lock."""


@contextmanager
def _locked(state_path: str) -> Iterator[None]:
    """One audit at a time per state file (a timer run must not overlap a slow one)."""
    lock = Path(state_path).with_name(Path(state_path).name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AuditBusy(f"{state_path}: another audit is running") from None
        yield
    finally:
        os.close(fd)


def run_audit(
    cfg: AuditConfig,
    *,
    dry_run: bool = False,
    parsers: Mapping[str, type[LineParser]] | None = None,
    host_snapshot: bool = True,
    sleep: Callable[[float], None] = time.sleep,
    on_event: Callable[[int], None] | None = None,
) -> AuditReport:
    """One scheduled audit run (see the module docstring for its order of steps)."""
    if dry_run:
        return _run(cfg, True, parsers, host_snapshot, sleep, on_event)
    with _locked(cfg.state):
        return _run(cfg, False, parsers, host_snapshot, sleep, on_event)


def _run(
    cfg: AuditConfig,
    dry_run: bool,
    parsers: Mapping[str, type[LineParser]] | None,
    host_snapshot: bool,
    sleep: Callable[[float], None],
    on_event: Callable[[int], None] | None,
) -> AuditReport:
    parsers = registry() if parsers is None else parsers
    report = AuditReport(dry_run=dry_run)
    now = datetime.now(UTC)
    cutoff = now - parse_duration(cfg.since) if cfg.since else None
    prev = load_checkpoint(cfg.state)
    state = prev if prev is not None else AuditState(host=cfg.host)
    if prev is None:
        state.watermark = cutoff or now - timedelta(days=1)
        if not dry_run:
            save_checkpoint(cfg.state, state)  # fixes the first window: re-runs give the same ids
    window = Window(state.watermark, now)
    names = StreamNames(cfg.es.namespace)
    builder = DocBuilder(cfg.host, names)

    sink: EsSink | None = None
    spool: Spool | None = None
    if not dry_run:
        spool = Spool(cfg.spool, cfg.spool_max_bytes)
        dead = DeadLetter(cfg.dead_letter, cfg.dead_letter_max_bytes)
        sink = EsSink(make_client(cfg.es), names, dead, cfg.es, sleep=sleep)
        try:
            report.mode = sink.setup()
        except Exception as exc:
            sink.down = sink.down or f"setup: {type(exc).__name__}: {exc}"
        if sink.refused:  # nothing read, sent or spooled: the next run starts at the same place
            report.delivery = "refused"
            report.problems.append(f"{sink.refused}; nothing was read or sent")
            return report
        if not sink.down:
            _drain(sink, spool, report, cfg.es.bulk_docs)
    shipper = _Shipper(sink, spool, cfg, report)
    snap = read_host(host_snapshot, cfg.source, state.counters, state.watermark, now)
    diagnosis = Diagnosis(Query())

    tz = parse_timezone(cfg.timezone)
    if cfg.timezone is None and snap.inputs is not None and cfg.source is not None:
        tz = input_zone(snap.inputs)
    base = ParseContext(timezone=tz, host_name=cfg.host)
    configs = snap.inputs.by_kind("nginx-config") if snap.inputs is not None else ()
    nginx_config = configs[0].path if configs else None
    new_files: dict[str, FileState] = {}
    taken = set(state.files) | set(state.retired)  # identities no new file may take
    for inp in _log_inputs(cfg, snap):
        follow = plan_input(inp.key, inp.path, state, cutoff, taken=taken)
        report.problems.extend(follow.problems)
        for entry in follow.kept:
            new_files[entry.identity] = entry
        for plan in follow.plans:
            cls, note = _parser_for(inp, plan.path, parsers)
            if note is not None:
                report.notes.append(note)
            try:
                if cls is None:
                    raise SourceError(note or f"{plan.path}: no parser named {inp.type!r}")
                ctx = file_context(plan.path, base, cls, nginx_config, report.notes)
            except SourceError as exc:
                report.problems.append(f"{exc} (set type in inputs)")
                new_files[plan.entry.identity] = plan.entry
                continue
            stats = ScanStats(plan.path, cls.name)
            report.files.append(stats)
            parser = cls(ctx, plan.path)
            for event in read_plan(plan, parser, stats):
                if plan.skip_before is not None and event.timestamp < plan.skip_before:
                    report.older_than_since += 1
                    continue
                report.events += 1
                diagnosis.add(event)
                shipper.add(builder.event(event, inp.key, plan.entry.identity))
                if on_event is not None:
                    on_event(report.events)
            new_files[plan.entry.identity] = finished(plan, stats)
            for issue in stats.issues[:5]:
                report.notes.append(f"{issue.location}: {issue.reason}")

    journal = None
    if cfg.journald:
        journal = JournalReader(state.journald_cursor, cutoff, cfg.journald_matches,
                                cfg.journald_directory)
        cls = parsers.get(cfg.journald_type)
        if cls is None:
            report.problems.append(f"journald: no parser named {cfg.journald_type!r}")
        else:
            stats = ScanStats("journald", cls.name)
            report.files.append(stats)
            try:
                for event, cursor in journal.events(cls(base, "journald"), stats):
                    report.events += 1
                    diagnosis.add(event)
                    shipper.add(builder.event(event, "journald", cursor))
            except SourceError as exc:
                report.problems.append(str(exc))

    moved = rule_moves(snap.inputs, snap.rulesets) if snap.inputs is not None else None
    diagnosed = diagnosis.report(snap.rulesets, snap.host_state, now=snap.captured or now,
                                 moved=moved)
    if cfg.source is not None:
        # A capture covers its own span: findings and snapshot are dated by it, so that
        # auditing the same capture again ships nothing new (same ids).
        end = snap.captured or diagnosed.end or now
        begun = snap.inputs.snapshot_time("before") if snap.inputs is not None else None
        window = Window(begun or end, end)
    for finding in diagnosed.findings:
        report.findings += 1
        shipper.add(builder.finding(finding, window))
    spool_info = {"dropped": report.dropped, "pending": spool.pending() if spool else 0}
    body = snapshot_body(snap, state.ruleset, spool_info, len(report.files), report.events)
    shipper.add(builder.snapshot(window, body))
    shipper.flush()
    if sink is not None and sink.dead_letter.dropped:
        report.notes.append(f"dead-letter file full ({cfg.dead_letter_max_bytes} bytes): rotated, "
                            f"{sink.dead_letter.dropped} older records dropped")
    if sink is not None and sink.down:
        report.delivery = "refused" if sink.refused else "unreachable"
        head = "not delivered" if sink.refused else "Elasticsearch unreachable"
        report.problems.append(f"{head}, {report.spooled} documents spooled: {sink.down}")
    if dry_run:
        return report
    state.retire(sorted(set(state.files) - set(new_files)))
    state.files = new_files
    if journal is not None:
        state.journald_cursor = journal.cursor
    state.watermark = now
    state.host = cfg.host
    if snap.counters:
        state.counters = snap.counters
    if snap.ruleset_fingerprint:
        state.ruleset = snap.ruleset_fingerprint
    state.runs += 1
    save_checkpoint(cfg.state, state)
    return report


def summary(report: AuditReport) -> dict[str, Any]:
    """The report as a JSON-ready summary."""
    return {
        "dry_run": report.dry_run,
        "mode": report.mode,
        "files": [{"path": s.path, "parser": s.parser, "lines": s.lines, "events": s.events,
                   "not_understood": s.not_understood} for s in report.files],
        "events": report.events,
        "older_than_since": report.older_than_since,
        "findings": report.findings,
        "documents": report.by_kind,
        "created": report.sent.created,
        "duplicates": report.sent.duplicates,
        "dead_letter": report.sent.dead,
        "retries": report.sent.retries,
        "spooled": report.spooled,
        "spool_sent": report.spool_sent,
        "spool_dropped": report.dropped,
        "problems": report.problems,
        "notes": report.notes,
    }
