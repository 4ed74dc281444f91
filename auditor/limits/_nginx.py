"""A tolerant bridge to :mod:`auditor.nginx.config`: load a config, read the values checks need.

The accessors of :class:`~auditor.nginx.config.NginxConfig` raise on values nginx
itself would reject; here such a value becomes a problem and the other checks go on.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from auditor.models import Location, ParseIssue
from auditor.parsers.host._text import issue

if TYPE_CHECKING:
    from auditor.nginx.config import NginxConfig

PARSER = "nginx-config"
T = TypeVar("T")
_PROBLEM = re.compile(r"^(.*?):(\d+): (.*)$")


def load_nginx(
    path: str, root: str | None = None
) -> tuple[NginxConfig | None, tuple[ParseIssue, ...]]:
    """(NginxConfig or None, problems) for a ``nginx -T`` dump or an nginx.conf with includes
    (resolved inside ``root``, the input's folder, when given)."""
    try:
        from auditor.nginx.config import load

        cfg = load(path, root)
    except (ValueError, OSError) as exc:  # unreadable or invalid (NginxConfigError): said
        loc = getattr(exc, "location", None)
        line = loc.line if isinstance(loc, Location) else 0
        where = loc.path if isinstance(loc, Location) else path
        return None, (issue(where, line, PARSER, f"nginx configuration not understood: {exc}"),)
    issues = []
    for text in cfg.problems:
        m = _PROBLEM.match(text)
        if m:
            issues.append(issue(m.group(1), int(m.group(2)), PARSER, m.group(3)))
        else:
            issues.append(issue(path, 0, PARSER, text))
    return cfg, tuple(issues)


def safe(cfg: NginxConfig | None, getter: Callable[[NginxConfig], T], default: T) -> T:
    """``getter(cfg)``, or ``default`` when there is no config or the value is invalid."""
    if cfg is None:
        return default
    try:
        return getter(cfg)
    except ValueError:  # an invalid value (NginxConfigError): read as not set
        return default


def worker_processes(cfg: NginxConfig | None, workers_seen: int) -> tuple[int | None, Any]:
    """(worker count, setting); ``auto`` resolves to the workers seen running, when any."""
    setting = safe(cfg, lambda c: c.worker_processes, None)
    if setting is None:
        return None, None
    if setting.value == "auto":
        return (workers_seen or None), setting
    return int(setting.value), setting


def safe_list(cfg: NginxConfig | None, getter: Callable[[NginxConfig], list[T]]) -> list[T]:
    """``getter(cfg)``, or an empty list when there is no config or a value is invalid."""
    if cfg is None:
        return []
    try:
        return getter(cfg)
    except ValueError:  # an invalid value (NginxConfigError): read as none
        return []
