"""The cause catalog: one declarative YAML file per cause in ``rules/``, loaded and validated.

A cause file names a stable ``id`` (= the file name), a ``title``, a ``description``,
the ``side`` that resets, whether the reset is ``intentional`` (policy, not an outage),
the ``evidence`` it looks for with a ``weight`` each, and a ``remedy`` template whose
``{placeholders}`` the engine fills with concrete values (see :data:`PLACEHOLDERS`).

Each evidence item holds exactly one matcher key:

``event``    {actions: [...], near: bool, min_count: n, without_syn: bool}: events in the
             group (or, with ``near: true``, anywhere on the host at about the same time)
``counter``  {names: [glob...], min_delta: n, counts: bool}: kernel counter deltas (nstat,
             conntrack -S); with ``counts: true`` (or ``anchor: true``) the counter also
             counts the cause's resets when no log line does (a reported port, a group
             stated from host facts)
``limit``    {names: [glob...], min_usage: 0..1 | equals: value}: a limit near full, or a
             tunable set to a given value; with ``zones_from: [actions]``, the nginx limit
             whose zone those events of the group name (its use taken from the logs)
``rule``     {targets: [...], reject_with: [...], matches: [regex...], not_matches: [...]}:
             the firewall rule that decided a traced packet (or that counted packets)
``fact``     {names: [...]}: a typed fact of the host (a fact builder of
             :mod:`auditor.limits.facts` stated it) or of the group (stated by the engine)
``query``    {}: the engineer's own --port/--client report matches the group

``risk: true`` marks host evidence (counter, limit, fact) that alone shows the cause as a
risk without any log (``auditor limits``, the notes of a diagnosis).
``anchor: true`` marks direct evidence; a cause without a matched anchor is never a
finding (nothing is blamed without evidence). ``yields_to: [ids]`` declares that the
listed causes are more specific: when one of them explains a group as well, this cause
steps aside. Every action, fact and placeholder named must be in
:mod:`auditor.vocabulary`. The loader collects every error of every file, each as
``file:line: message``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from auditor.correlate.catalog_checks import KINDS, check_item, remedy_problems

SIDES = ("client", "firewall", "kernel", "nginx", "upstream")
ROLES = ("cause", "risk")
_ID = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_TOP_KEYS = {
    "id",
    "title",
    "description",
    "side",
    "role",
    "intentional",
    "evidence",
    "remedy",
    "references",
    "aliases",
    "yields_to",
}
class CatalogError(ValueError):
    """Every problem of every catalog file, one ``file:line: message`` per line."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass(frozen=True, slots=True)
class EvidenceSpec:
    """One piece of evidence a cause looks for, with its weight."""

    kind: str  # one of KINDS
    label: str
    weight: float
    anchor: bool
    params: Mapping[str, Any] = field(default_factory=dict)
    line: int = 0
    risk: bool = False  # matched on the host's facts alone, it shows the cause as a risk

    def strings(self, key: str) -> tuple[str, ...]:
        value = self.params.get(key) or ()
        return tuple(str(v) for v in (value if isinstance(value, list | tuple) else [value]))


@dataclass(frozen=True, slots=True)
class Cause:
    """One cause of resets, as declared in ``rules/<id>.yaml``."""

    id: str
    title: str
    description: str
    side: str
    remedy: str
    evidence: tuple[EvidenceSpec, ...]
    intentional: bool = False
    role: str = "cause"  # "cause" | "risk" (config-only; shown as a note, never alone a finding)
    references: tuple[str, ...] = ()
    path: str = ""
    yields_to: tuple[str, ...] = ()  # more specific causes this one steps aside for
    # the rule patterns of those causes: a rule they match is theirs (set by the loader)
    yielded_rules: tuple[str, ...] = ()

    def actions(self, anchors_only: bool = False) -> frozenset[str]:
        """Event actions this cause's evidence names."""
        out: set[str] = set()
        for spec in self.evidence:
            if spec.kind == "event" and (spec.anchor or not anchors_only):
                out.update(spec.strings("actions"))
        return frozenset(out)


@dataclass(frozen=True, slots=True)
class Catalog:
    causes: tuple[Cause, ...]
    origin: str = ""

    def __iter__(self) -> Any:
        return iter(self.causes)

    def __len__(self) -> int:
        return len(self.causes)

    def get(self, cause_id: str) -> Cause | None:
        for cause in self.causes:
            if cause.id == cause_id:
                return cause
        return None


def default_dir() -> Path:
    """The catalog shipped with auditor (``auditor/catalog`` = the repository's ``rules/``)."""
    shipped = Path(str(resources.files("auditor") / "catalog"))
    if shipped.is_dir() and any(shipped.glob("*.yaml")):
        return shipped
    return Path(__file__).resolve().parents[2] / "rules"


@cache
def load_default() -> Catalog:
    return load_catalog(default_dir())


def load_catalog(directory: Path | str) -> Catalog:
    """Every ``*.yaml`` under ``directory``, validated; CatalogError lists all problems."""
    directory = Path(directory)
    files = sorted(directory.glob("*.yaml"))
    errors: list[str] = []
    if not files:
        raise CatalogError([f"{directory}: no cause files (*.yaml) found"])
    causes: list[Cause] = []
    for path in files:
        cause = load_file(path, errors)
        if cause is not None:
            causes.append(cause)
    _check_yields(causes, errors)
    if errors:
        raise CatalogError(errors)
    by_id = {c.id: c for c in causes}
    causes = [
        replace(c, yielded_rules=tuple(
            p
            for other in c.yields_to
            for spec in by_id[other].evidence
            if spec.kind == "rule"
            for p in spec.strings("matches")
        ))
        for c in causes
    ]
    return Catalog(tuple(causes), str(directory))


def load_file(path: Path, errors: list[str]) -> Cause | None:
    """One cause file; problems are appended to ``errors`` as ``file:line: message``."""
    try:
        text = path.read_text(encoding="utf-8")
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        node = yaml.compose(text, Loader=loader)
        data = yaml.load(text, Loader=loader)
    except (OSError, UnicodeDecodeError) as exc:
        errors.append(f"{path}: {exc}")
        return None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        errors.append(f"{path}:{line}: YAML error: {getattr(exc, 'problem', exc)}")
        return None
    lines = _key_lines(node)
    before = len(errors)

    def err(key: str, message: str) -> None:
        errors.append(f"{path}:{lines.get(key, 1)}: {message}")

    if not isinstance(data, dict):
        err("", "a cause file must be a mapping")
        return None
    for key in sorted(set(data) - _TOP_KEYS):
        err(key, f"unknown key {key!r} (allowed: {', '.join(sorted(_TOP_KEYS))})")
    for key in ("id", "title", "description", "side", "remedy", "evidence"):
        if key not in data:
            err("", f"missing required key {key!r}")
    cid = data.get("id")
    if cid is not None and (not isinstance(cid, str) or not _ID.match(cid)):
        err("id", f"id {cid!r} must be lower-case words joined by '-'")
    elif cid is not None and cid != path.stem:
        err("id", f"id {cid!r} must equal the file name {path.stem!r}")
    for key in ("title", "description", "remedy"):
        if key in data and (not isinstance(data[key], str) or not data[key].strip()):
            err(key, f"{key} must be a non-empty string")
    if "side" in data and data["side"] not in SIDES:
        err("side", f"side {data['side']!r} must be one of {', '.join(SIDES)}")
    if data.get("role", "cause") not in ROLES:
        err("role", f"role must be one of {', '.join(ROLES)}")
    yields = data.get("yields_to", [])
    if not isinstance(yields, list) or not all(isinstance(x, str) for x in yields):
        err("yields_to", "yields_to must be a list of cause ids")
    if not isinstance(data.get("intentional", False), bool):
        err("intentional", "intentional must be true or false")
    remedy = data.get("remedy")
    if isinstance(remedy, str):
        for message in remedy_problems(remedy):
            err("remedy", message)
    specs = _evidence(
        data.get("evidence"),
        node,
        lambda line, m: errors.append(f"{path}:{line}: {m}"),
        lines.get("evidence", 1),
    )
    if (
        specs is not None
        and not any(s.anchor for s in specs)
        and data.get("role", "cause") == "cause"
    ):
        err("evidence", "a cause needs at least one evidence item with anchor: true")
    if len(errors) > before or specs is None:
        return None
    return Cause(
        id=data["id"],
        title=data["title"].strip(),
        description=data["description"].strip(),
        side=data["side"],
        remedy=data["remedy"].strip(),
        evidence=tuple(specs),
        intentional=bool(data.get("intentional", False)),
        role=data.get("role", "cause"),
        references=tuple(str(r) for r in data.get("references") or ()),
        path=str(path),
        yields_to=tuple(str(x) for x in data.get("yields_to") or ()),
    )


def _key_lines(node: Any) -> dict[str, int]:
    out: dict[str, int] = {"": 1}
    if isinstance(node, yaml.MappingNode):
        for key, _value in node.value:
            out[str(key.value)] = key.start_mark.line + 1
    return out


def _item_nodes(root: Any) -> list[Any]:
    if isinstance(root, yaml.MappingNode):
        for key, value in root.value:
            if key.value == "evidence" and isinstance(value, yaml.SequenceNode):
                return list(value.value)
    return []


def _evidence(raw: Any, root: Any, err: Any, line0: int) -> list[EvidenceSpec] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not raw:
        err(line0, "evidence must be a non-empty list")
        return None
    nodes = _item_nodes(root)
    specs: list[EvidenceSpec] = []
    ok = True
    for i, item in enumerate(raw):
        line = nodes[i].start_mark.line + 1 if i < len(nodes) else line0
        problems = list(check_item(item))
        for message in problems:
            err(line, f"evidence[{i}]: {message}")
        if problems:
            ok = False
            continue
        kind = next(k for k in KINDS if k in item)
        specs.append(
            EvidenceSpec(
                kind=kind,
                label=str(item.get("label") or kind),
                weight=float(item["weight"]),
                anchor=bool(item.get("anchor", False)),
                params=dict(item[kind] or {}),
                line=line,
                risk=bool(item.get("risk", False)),
            )
        )
    return specs if ok else None


def _check_yields(causes: list[Cause], errors: list[str]) -> None:
    ids = {c.id for c in causes}
    for cause in causes:
        for other in cause.yields_to:
            if other not in ids or other == cause.id:
                line = _line_of(cause.path, "yields_to")
                errors.append(f"{cause.path}:{line}: yields_to: unknown cause {other!r}")


def _line_of(path: str, key: str) -> int:
    try:
        node = yaml.compose(Path(path).read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return 1
    return _key_lines(node).get(key, 1)
