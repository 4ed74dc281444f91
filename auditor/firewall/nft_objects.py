"""The parts of an nftables ruleset as read from ``nft -j list ruleset`` JSON (or its text).

Tables, named sets and maps, chains and rules, as frozen dataclasses. The reader
(:mod:`auditor.firewall.nft_json`, fed by :mod:`auditor.firewall.nft_text` for
``nft list ruleset`` text) builds them and the evaluator
(:mod:`auditor.firewall.nft_eval`) compiles them; both import this module, neither
imports the other's internals, so the reader can import the evaluator without a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from auditor.firewall.model import RuleRef
from auditor.models import Location

BACKEND = "nftables"


class NftError(ValueError):
    """The ruleset could not be read at all (bad JSON, missing nft, no permission)."""


@dataclass(frozen=True, slots=True)
class NftTable:
    family: str
    name: str
    handle: int | None = None
    flags: tuple[str, ...] = ()
    iptables: str | None = None  # why it is considered iptables-nft's, else None


@dataclass(frozen=True, slots=True)
class NftSet:
    """A named set or map; ``elements`` are the raw JSON elements (``[key, data]`` for maps)."""

    family: str
    table: str
    name: str
    type: tuple[str, ...]
    handle: int | None = None
    flags: tuple[str, ...] = ()
    map_type: str | None = None  # None for a set; "verdict" for a verdict map
    elements: tuple[Any, ...] = ()
    dynamic: bool = False  # updated from the packet path (add/update @set, meters)
    location: Location | None = None


@dataclass(frozen=True, slots=True)
class NftRule:
    family: str
    table: str
    chain: str
    handle: int | None
    position: int  # 1-based within the chain
    expr: tuple[Any, ...]
    text: str
    ref: RuleRef
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class NftChain:
    family: str
    table: str
    name: str
    handle: int | None = None
    type: str | None = None
    hook: str | None = None
    priority: int | None = None
    policy: str | None = None
    device: str | None = None
    rules: tuple[NftRule, ...] = ()
    location: Location | None = None

    @property
    def is_base(self) -> bool:
        return self.hook is not None
