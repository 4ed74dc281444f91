"""Configuration of scheduled audits: a TOML file, then ``AUDITOR_*`` variables, then flags.

The file is ``/etc/auditor/auditor.toml`` by default (see samples/deploy/auditor.toml).
Credentials come from an API key, basic auth or files holding them; they are held
in :class:`Secret`, which never shows its value in ``repr``/``str``, so a secret is
never printed or logged. There are no flags for secrets (they would show in ``ps``).
"""

from __future__ import annotations

import os
import re
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

DEFAULT_PATH = "/etc/auditor/auditor.toml"


class ConfigError(ValueError):
    """A configuration that cannot be used, with a one-line reason naming the setting."""


class Secret:
    """A credential; its value is only available through :meth:`reveal`."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)



def validate_namespace(namespace: str) -> str:
    """Elastic's rules: lowercase, no '-', no \\ / * ? \" < > | , # : or space, <= 100 bytes."""
    bad = set('\\/*?"<>|,#: -')
    if not namespace or namespace != namespace.lower() or bad & set(namespace):
        raise ValueError(f"namespace {namespace!r} is not valid: use lowercase, digits, '_' or '.'")
    if len(namespace) > 100:
        raise ValueError(f"namespace {namespace!r} is longer than 100 characters")
    return namespace

@dataclass(frozen=True, slots=True)
class InputConfig:
    """One log to follow: its live path (rotated siblings are found next to it)."""

    path: str
    type: str = "auto"  # parser name
    name: str = ""  # stable name used in document ids; defaults to the path

    @property
    def key(self) -> str:
        return self.name or self.path


@dataclass(frozen=True, slots=True)
class EsConfig:
    hosts: tuple[str, ...] = ()
    namespace: str = "default"
    api_key: Secret | None = None
    username: str | None = None
    password: Secret | None = None
    ca_file: str | None = None
    verify: bool = True
    timeout: float = 30.0
    max_retries: int = 6
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    bulk_docs: int = 2000
    bulk_bytes: int = 5 << 20
    allow_http_credentials: bool = False  # send credentials over plain http:// (opt-in)

    @property
    def has_credentials(self) -> bool:
        return self.api_key is not None or self.password is not None


@dataclass(frozen=True, slots=True)
class AuditConfig:
    host: str = field(default_factory=socket.gethostname)
    state: str = "/var/lib/auditor/state.json"
    spool: str = "/var/lib/auditor/spool"
    spool_max_bytes: int = 256 << 20
    dead_letter: str = "/var/lib/auditor/dead-letter.ndjson"
    dead_letter_max_bytes: int = 64 << 20  # then rotated to <dead_letter>.1 (one kept)
    since: str | None = "24h"  # backlog bound for files seen for the first time
    timezone: str | None = None
    inputs: tuple[InputConfig, ...] = ()
    journald: bool = False  # also read the journal (by cursor)
    journald_type: str = "kernel"  # parser for its entries
    journald_matches: tuple[str, ...] = ("_TRANSPORT=kernel",)  # journalctl matches
    journald_directory: str | None = None  # a journal directory instead of the system's
    es: EsConfig = field(default_factory=EsConfig)
    # A bundle/directory/sosreport to audit instead of this host: its rules and host facts,
    # and (when no inputs are configured) its logs.
    source: str | None = None


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(value: object, name: str) -> int:
    """``1048576``, ``"512MiB"``, ``"2G"`` -> bytes."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    m = _SIZE.match(str(value))
    if not m:
        raise ConfigError(f"{name}: cannot read size {value!r} (use e.g. 256MiB)")
    unit = (m.group(2) or "").lower()[:1]
    return int(float(m.group(1)) * _UNITS[unit])


def _bool(value: object, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}: expected true or false, not {value!r}")


def _read_secret_file(path: str, name: str) -> Secret:
    try:
        text = Path(path).read_text("utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read {path} ({exc.strerror or exc})") from exc
    if not text:
        raise ConfigError(f"{name}: {path} is empty")
    return Secret(text)


def _es_from(raw: Mapping[str, Any], base: EsConfig, credentials: bool = True) -> EsConfig:
    """Apply one layer (file table or environment) onto ``base``.

    With ``credentials`` false, secrets are neither read nor kept (a dry run needs none).
    """
    es = base
    hosts = raw.get("hosts", raw.get("url"))
    if hosts is not None:
        items = hosts if isinstance(hosts, list) else str(hosts).split(",")
        es = replace(es, hosts=tuple(str(h).strip() for h in items if str(h).strip()))
    changes: dict[str, Any] = {}
    try:
        for key in ("namespace", "username", "ca_file"):
            if raw.get(key) is not None:
                changes[key] = str(raw[key])
        for key in ("timeout", "backoff_initial", "backoff_max"):
            if raw.get(key) is not None:
                changes[key] = float(raw[key])
        for key in ("max_retries", "bulk_docs"):
            if raw.get(key) is not None:
                changes[key] = int(raw[key])
    except ValueError as exc:
        raise ConfigError(f"elasticsearch: {exc}") from None
    es = replace(es, **changes)
    if raw.get("verify") is not None:
        es = replace(es, verify=_bool(raw["verify"], "elasticsearch.verify"))
    if raw.get("bulk_bytes") is not None:
        es = replace(es, bulk_bytes=parse_size(raw["bulk_bytes"], "elasticsearch.bulk_bytes"))
    if raw.get("allow_http_credentials") is not None:
        allow = _bool(raw["allow_http_credentials"], "elasticsearch.allow_http_credentials")
        es = replace(es, allow_http_credentials=allow)
    if not credentials:
        return es
    if raw.get("api_key") is not None:
        es = replace(es, api_key=Secret(str(raw["api_key"])))
    if raw.get("api_key_file") is not None:
        es = replace(es, api_key=_read_secret_file(str(raw["api_key_file"]), "api_key_file"))
    if raw.get("password") is not None:
        es = replace(es, password=Secret(str(raw["password"])))
    if raw.get("password_file") is not None:
        es = replace(es, password=_read_secret_file(str(raw["password_file"]), "password_file"))
    return es


_ENV_ES = {
    "AUDITOR_ES_URL": "hosts", "AUDITOR_ES_NAMESPACE": "namespace",
    "AUDITOR_ES_USERNAME": "username",
    "AUDITOR_ES_PASSWORD": "password", "AUDITOR_ES_PASSWORD_FILE": "password_file",
    "AUDITOR_ES_API_KEY": "api_key", "AUDITOR_ES_API_KEY_FILE": "api_key_file",
    "AUDITOR_ES_CA_FILE": "ca_file", "AUDITOR_ES_VERIFY": "verify", "AUDITOR_ES_TIMEOUT": "timeout",
    "AUDITOR_ES_ALLOW_HTTP_CREDENTIALS": "allow_http_credentials",
}
_ENV_TOP = {
    "AUDITOR_HOST": "host", "AUDITOR_STATE": "state", "AUDITOR_SPOOL": "spool",
    "AUDITOR_SPOOL_MAX_BYTES": "spool_max_bytes", "AUDITOR_DEAD_LETTER": "dead_letter",
    "AUDITOR_DEAD_LETTER_MAX_BYTES": "dead_letter_max_bytes",
    "AUDITOR_SINCE": "since", "AUDITOR_TIMEZONE": "timezone", "AUDITOR_SOURCE": "source",
}


def _top_from(raw: Mapping[str, Any], cfg: AuditConfig) -> AuditConfig:
    changes: dict[str, Any] = {
        key: str(raw[key])
        for key in ("host", "state", "spool", "dead_letter", "since", "timezone", "source")
        if raw.get(key) is not None
    }
    cfg = replace(cfg, **changes)
    if raw.get("spool_max_bytes") is not None:
        cfg = replace(cfg, spool_max_bytes=parse_size(raw["spool_max_bytes"], "spool_max_bytes"))
    if raw.get("dead_letter_max_bytes") is not None:
        size = parse_size(raw["dead_letter_max_bytes"], "dead_letter_max_bytes")
        cfg = replace(cfg, dead_letter_max_bytes=size)
    return cfg


def load_config(
    path: str | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    credentials: bool = True,
) -> AuditConfig:
    """File (``path``, else AUDITOR_CONFIG, else the default when it exists), env, then flags.

    ``overrides`` holds flag values (``es_hosts``, ``since``, ``state``,
    ``allow_http_credentials``); None means unset. With ``credentials`` false no secret
    is read (``audit --dry-run``). Credentials bound for a plain ``http://`` URL are
    refused unless ``allow_http_credentials`` is set.
    """
    env = os.environ if env is None else env
    explicit = path or env.get("AUDITOR_CONFIG")
    file = explicit or DEFAULT_PATH
    raw: dict[str, Any] = {}
    if explicit or Path(file).exists():
        try:
            with open(file, "rb") as fh:
                raw = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError(f"{file}: cannot read ({exc.strerror or exc})") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: not valid TOML ({exc})") from exc
    cfg = _top_from(raw, AuditConfig())
    inputs = []
    for i, item in enumerate(raw.get("inputs") or []):
        if not isinstance(item, dict) or not item.get("path"):
            raise ConfigError(f"{file}: inputs[{i}] needs a path")
        kind, name = str(item.get("type", "auto")), str(item.get("name", ""))
        inputs.append(InputConfig(str(item["path"]), kind, name))
    journald = raw.get("journald", {})
    jtable = journald if isinstance(journald, dict) else {"enabled": journald}
    matches = jtable.get("matches", list(cfg.journald_matches))
    cfg = replace(
        cfg,
        inputs=tuple(inputs),
        journald=_bool(jtable.get("enabled", False), "journald.enabled"),
        journald_type=str(jtable.get("type", cfg.journald_type)),
        journald_matches=tuple(str(m) for m in matches),
        journald_directory=str(jtable["directory"]) if jtable.get("directory") else None,
        es=_es_from(raw.get("elasticsearch") or {}, cfg.es, credentials),
    )
    # environment
    cfg = _top_from({v: env[k] for k, v in _ENV_TOP.items() if env.get(k)}, cfg)
    es_env = {v: env[k] for k, v in _ENV_ES.items() if env.get(k)}
    cfg = replace(cfg, es=_es_from(es_env, cfg.es, credentials))
    # flags
    ov = overrides or {}
    if ov.get("es_hosts"):
        cfg = replace(cfg, es=replace(cfg.es, hosts=tuple(ov["es_hosts"])))
    for key in ("since", "state", "source"):
        if ov.get(key) is not None:
            cfg = replace(cfg, **{key: ov[key]})
    if ov.get("allow_http_credentials"):
        cfg = replace(cfg, es=replace(cfg.es, allow_http_credentials=True))
    try:
        validate_namespace(cfg.es.namespace)
    except ValueError as exc:
        raise ConfigError(f"elasticsearch.namespace: {exc}") from None
    if cfg.es.password is not None and not cfg.es.username:
        raise ConfigError("elasticsearch.password given without elasticsearch.username")
    for url in cfg.es.hosts:
        if "@" in url.split("//", 1)[-1].split("/", 1)[0]:
            raise ConfigError(
                "elasticsearch.hosts: put credentials in api_key or password(_file), not in URLs"
            )
    plain = [url for url in cfg.es.hosts if url.lower().startswith("http://")]
    if plain and cfg.es.has_credentials and not cfg.es.allow_http_credentials:
        raise ConfigError(
            f"elasticsearch.hosts: {plain[0]} is plain http://, which would send the credentials "
            "unencrypted; use https://, or set elasticsearch.allow_http_credentials = true "
            "(AUDITOR_ES_ALLOW_HTTP_CREDENTIALS=1, --allow-http-credentials) to accept that"
        )
    return cfg
