"""What an analysis reads: a bundle (archive or directory), any directory of artifacts, a sosreport.

:func:`open_input` returns :class:`Inputs`: host facts and every artifact with
its kind, recognised by content (a manifest, when present, only adds notes).
Files that could not be understood are listed in ``problems`` with their path.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from auditor.bundle import tempdirs
from auditor.bundle.collect import collect_dir
from auditor.bundle.reader import recognise, snapshot_mark
from auditor.bundle.trace import hook as trace_hook
from auditor.bundle.unpack import Budget, is_tar, unpack
from auditor.models import Location, ParseIssue
from auditor.paths import Tree, check, open_regular
from auditor.sources.files import SourceError, display_path, read_head

PARSER = "bundle"
MANIFEST = "manifest.json"
HOSTNAME = "hostname"  # a plain directory's (or sosreport's) host name file
# Parts of a sosreport worth reading; the rest is not looked at.
SOS_PLACES = (
    "sos_commands/networking",
    "sos_commands/kernel",
    "sos_commands/firewall_tables",
    "sos_commands/nginx",
    "sos_commands/logs",
    "proc/net",
    "var/log",
    "etc/nginx/nginx.conf",
)
SOS_LOG_NAMES = ("kern.log", "syslog", "messages", "ufw.log", "nginx")
MAX_MANIFEST = 16 << 20  # a larger manifest.json is not one collect wrote
MAX_NOTES = 50  # skipped members/files listed one by one; the rest counted


@dataclass(frozen=True, slots=True)
class Artifact:
    """One file of an input and what it is. ``note``: "before"/"after" for counter snapshots,
    otherwise a free note (the command it came from, the sosreport path...)."""

    kind: str
    path: str
    note: str = ""

    @property
    def display(self) -> str:
        """The path as valid UTF-8 text (undecodable name bytes as ``\\xNN``), for output."""
        return display_path(self.path)

    @property
    def phase(self) -> str | None:
        word = self.note.split(" ", 1)[0]
        return word if word in ("before", "after") else None


@dataclass(frozen=True, slots=True)
class Inputs:
    """Everything an analysis can read, and what could not be understood."""

    host: str | None
    kernel: str | None
    boot_time: datetime | None
    timezone: str | None
    artifacts: tuple[Artifact, ...]
    problems: tuple[ParseIssue, ...]
    root: str
    snapshot_times: tuple[tuple[str, datetime], ...] = ()  # ("before", t), ("after", t)

    def by_kind(self, kind: str) -> tuple[Artifact, ...]:
        return tuple(a for a in self.artifacts if a.kind == kind)

    def logs(self) -> tuple[Artifact, ...]:
        """Artifacts whose kind is a log parser's name (kernel, nginx-error, nginx-access...)."""
        from auditor.parsers import registry

        names = set(registry())
        return tuple(a for a in self.artifacts if a.kind in names)

    def snapshot_time(self, phase: str) -> datetime | None:
        return next((t for p, t in self.snapshot_times if p == phase), None)


def _problem(path: str, reason: str) -> ParseIssue:
    return ParseIssue(Location(path), PARSER, reason)


def _kind_of(path: str, regular: bool = True) -> tuple[str | None, list[str]]:
    head = read_head(path, lines=60, regular=regular)
    kind = recognise(head)
    if kind is None:
        from auditor.parsers import detect

        cls = detect(head)
        kind = cls.name if cls is not None else None
    return kind, head


def _instant(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _extract(archive: str, skipped: list[tuple[str, str]]) -> str:
    """Unpack with our own checks (:mod:`auditor.bundle.unpack`) into a private folder
    removed on every exit; only regular files and directories are written."""
    dest = tempdirs.make("auditor-input-")
    try:
        unpack(archive, dest, skipped, Budget.from_env())
    except BaseException:
        tempdirs.remove(dest)
        raise
    entries = [e for e in os.listdir(dest) if not e.startswith(".")]
    if len(entries) == 1 and os.path.isdir(os.path.join(dest, entries[0])):
        return os.path.join(dest, entries[0])
    return dest


def _is_archive(path: str) -> bool:
    try:
        return is_tar(path)
    except SourceError:
        raise
    except Exception as exc:  # truncated gzip/xz raise EOFError, zlib.error, LZMAError...
        raise SourceError(f"{path}: not a readable archive or compressed file ({exc})") from exc


def open_input(path: str) -> Inputs:
    """Read a bundle archive or directory, a directory of artifacts, a sosreport, or one file."""
    if not os.path.exists(path):
        raise SourceError(f"{path}: no such file or directory")
    if os.path.isfile(path):
        if _is_archive(path):
            skipped: list[tuple[str, str]] = []
            found = _open_dir(_extract(path, skipped), origin=path)
            if not skipped:
                return found
            notes = [_problem(f"{path}:{name}", why) for name, why in skipped[:MAX_NOTES]]
            if len(skipped) > MAX_NOTES:
                notes.append(
                    _problem(path, f"{len(skipped) - MAX_NOTES} more archive members not unpacked")
                )
            return dataclasses.replace(found, problems=(*found.problems, *notes))
        try:
            kind, _ = _kind_of(path, regular=False)
        except SourceError:
            raise
        except Exception as exc:
            raise SourceError(f"{path}: cannot read ({exc})") from exc
        problems = () if kind else (_problem(path, "kind of file not recognised"),)
        arts = (Artifact(kind, path),) if kind else ()
        return Inputs(None, None, None, None, arts, problems, os.path.dirname(path) or ".")
    return _open_dir(path, origin=path)


def _open_dir(root: str, origin: str) -> Inputs:
    if os.path.isdir(os.path.join(root, "sos_commands")):
        return _open_sos(root)
    manifest: dict[str, object] = {}
    problems: list[ParseIssue] = []
    tree = Tree(root)
    mpath = os.path.join(root, MANIFEST)
    if os.path.lexists(mpath) and check(mpath, tree.real_root) is None:
        try:
            with os.fdopen(open_regular(mpath), encoding="utf-8") as fh:
                loaded = json.loads(fh.read(MAX_MANIFEST))
            manifest = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError) as exc:
            problems.append(_problem(mpath, f"manifest not readable ({exc})"))
    notes = {}
    for entry in manifest.get("artifacts", []) or []:  # type: ignore[attr-defined]
        if isinstance(entry, dict) and isinstance(entry.get("path"), str):
            notes[os.path.normpath(entry["path"])] = str(entry.get("note", ""))
    artifacts, times = _recognise_all(root, tree.files(), notes, problems, report_unknown=True)
    problems.extend(_tree_notes(tree))
    host = manifest.get("host") if isinstance(manifest.get("host"), dict) else {}
    assert isinstance(host, dict)
    for phase, stamp in (manifest.get("snapshots") or {}).items():  # type: ignore[attr-defined]
        when = _instant(stamp)
        if when is not None and phase not in dict(times):
            times.append((phase, when))
    named = _read_small(os.path.join(root, HOSTNAME), tree) if not host.get("name") else None
    return Inputs(
        host=host.get("name") or _host_name(named),
        kernel=host.get("kernel"),
        boot_time=_instant(host.get("boot_time")),
        timezone=host.get("timezone"),
        artifacts=tuple(artifacts),
        problems=tuple(problems),
        root=root,
        snapshot_times=tuple(sorted(times, key=lambda t: t[1])),
    )


def _recognise_all(
    root: str,
    paths: Iterator[str],
    notes: dict[str, str],
    problems: list[ParseIssue],
    report_unknown: bool,
) -> tuple[list[Artifact], list[tuple[str, datetime]]]:
    artifacts: list[Artifact] = []
    times: dict[str, datetime] = {}
    for path in paths:
        rel = os.path.normpath(os.path.relpath(path, root))
        if rel == MANIFEST:
            continue
        try:
            kind, head = _kind_of(path)
        except Exception as exc:  # one unreadable file must not hide the others
            problems.append(_problem(path, f"cannot read ({exc})"))
            continue
        if kind is None:
            if rel == HOSTNAME:  # the host's name (read as a host fact), not a log
                continue
            if report_unknown and any(line.strip() for line in head):
                problems.append(_problem(path, "kind of file not recognised; not used"))
            continue
        note = notes.get(rel, "")
        mark = snapshot_mark(head)
        if mark is not None:
            note = note if note else mark[0]
            when = _instant(mark[1])
            if when is not None:
                times.setdefault(mark[0], when)
        artifacts.append(Artifact(kind, path, note))
    return artifacts, sorted(times.items(), key=lambda t: t[1])


def _tree_notes(tree: Tree) -> list[ParseIssue]:
    """The files of a folder input that were not read, and the cap, as problems."""
    notes = [_problem(path, why) for path, why in tree.skipped[:MAX_NOTES]]
    if len(tree.skipped) > MAX_NOTES:
        notes.append(_problem(tree.root, f"{len(tree.skipped) - MAX_NOTES} more files not read"))
    if tree.capped:
        notes.append(_problem(tree.root, tree.cap_note()))
    return notes


def _host_name(text: str | None) -> str | None:
    """A ``hostname`` file's name: one short line of name characters, else None."""
    if not text or "\n" in text or len(text) > 253:
        return None
    return text if all(c.isalnum() or c in "-._" for c in text) else None


def _read_small(path: str, tree: Tree) -> str | None:
    """The start of a small text file of the input (a regular file inside it), or None."""
    if not os.path.lexists(path) or check(path, tree.real_root) is not None:
        return None
    try:
        with os.fdopen(open_regular(path), encoding="utf-8", errors="replace") as fh:
            return fh.read(4096).strip()
    except OSError:
        return None


def _open_sos(root: str) -> Inputs:
    problems: list[ParseIssue] = []
    tree = Tree(root)

    def places(logs: bool) -> Iterator[str]:
        """The files of the read places: the host and nginx logs of ``var/log`` (``logs``),
        or the rest."""
        for place in SOS_PLACES:
            full = os.path.join(root, place)
            if (place == "var/log") != logs:
                continue
            if os.path.isfile(full) or os.path.islink(full):
                why = check(full, tree.real_root)
                if why is None:
                    yield full
                else:
                    tree.skipped.append((full, why))
            elif place == "var/log":
                for path in tree.files(full):
                    rel = os.path.relpath(path, full)
                    if any(rel == n or rel.startswith((n + ".", n + "/")) for n in SOS_LOG_NAMES):
                        yield path
            elif os.path.isdir(full):
                yield from tree.files(full)

    # A log the sosreport holds under a log's name but whose lines are not recognised (an
    # access log in a format only its nginx configuration declares) is said, not dropped;
    # the command outputs of sos_commands are many, and only those auditor reads matter.
    artifacts, times = _recognise_all(root, places(True), {}, problems, report_unknown=True)
    more, more_times = _recognise_all(root, places(False), {}, problems, report_unknown=False)
    artifacts += more
    times = sorted([*times, *more_times], key=lambda t: t[1])
    problems.extend(_tree_notes(tree))
    artifacts = [
        Artifact(a.kind, a.path, a.note or "sosreport " + os.path.relpath(a.path, root))
        for a in artifacts
    ]
    uname = _read_small(os.path.join(root, "uname"), tree) or ""
    parts = uname.split()
    return Inputs(
        host=_host_name(_read_small(os.path.join(root, HOSTNAME), tree)),
        kernel=parts[2] if len(parts) > 2 else None,
        boot_time=None,
        timezone=None,
        artifacts=tuple(artifacts),
        problems=tuple(problems),
        root=root,
        snapshot_times=tuple(times),
    )


def live_inputs(
    since: timedelta = timedelta(hours=2),
    sample: float = 0.0,
    logs: bool = True,
    rules: bool = True,
    trace: float = 0.0,
) -> Inputs:
    """Collect the live host into a temporary bundle directory and open it
    (``logs=False``/``rules=False`` leave those parts out; ``trace`` seconds of kernel
    trace replace the counter sample)."""
    dest = tempdirs.make("auditor-live-")
    window = trace_hook(trace) if trace > 0 else None
    collect_dir(dest, since=since, sample=sample, logs=logs, rules=rules, window=window)
    return open_input(dest)
