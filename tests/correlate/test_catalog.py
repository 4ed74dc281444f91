"""The cause catalog: contract ids present, every file valid, errors collected with file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditor.correlate.catalog import CatalogError, default_dir, load_catalog, load_default
from auditor.correlate.docs import render

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = [
    "firewall-reject",
    "firewall-conn-limit",
    "firewall-rate-limit",
    "conntrack-invalid",
    "conntrack-table-full",
    "listen-queue-overflow",
    "syn-flood",
    "orphan-sockets",
    "tcp-memory-pressure",
    "fd-exhaustion",
    "nginx-worker-connections",
    "nginx-conn-limit",
    "nginx-rate-limit",
    "upstream-reset",
    "upstream-keepalive-race",
    "upstream-crash",
    "client-abort",
    "service-restart",
    "no-listener",
    "listen-backlog-capped",
    "tcp-abort-on-overflow",
    "conntrack-timeout-short",
    "syn-backlog-small",
]


def test_contract_ids_present() -> None:
    ids = {c.id for c in load_default().causes}
    assert set(CONTRACT) <= ids, sorted(set(CONTRACT) - ids)


def test_shipped_catalog_is_the_repository_rules() -> None:
    shipped = sorted(p.name for p in default_dir().glob("*.yaml"))
    assert shipped == sorted(p.name for p in (ROOT / "rules").glob("*.yaml"))


def test_intentional_and_sides() -> None:
    cat = load_default()
    assert cat.get("nginx-return-444") is not None and cat.get("nginx-return-444").intentional
    assert cat.get("firewall-ban-list").intentional  # type: ignore[union-attr]
    assert not cat.get("firewall-reject").intentional  # type: ignore[union-attr]
    assert {c.side for c in cat.causes} == {"client", "firewall", "kernel", "nginx", "upstream"}


def test_errors_are_collected_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "good-one.yaml").write_text(
        (ROOT / "rules" / "client-abort.yaml").read_text().replace("client-abort", "good-one", 1)
    )
    (tmp_path / "bad-side.yaml").write_text(
        "id: bad-side\ntitle: t\ndescription: d\nside: moon\nremedy: 'use {nope}'\n"
        "evidence:\n  - label: x\n    event: {actions: [a]}\n    weight: 0.5\n    anchor: true\n"
        "  - label: y\n    counter: {names: [X], bogus: 1}\n    weight: 2\n"
    )
    (tmp_path / "wrong-name.yaml").write_text("id: other\n")
    (tmp_path / "broken.yaml").write_text("id: broken\ntitle: [unclosed\n")
    with pytest.raises(CatalogError) as info:
        load_catalog(tmp_path)
    errors = info.value.errors
    text = "\n".join(errors)
    assert f"{tmp_path}/bad-side.yaml:4: side 'moon'" in text
    assert f"{tmp_path}/bad-side.yaml:5: unknown placeholder {{nope}}" in text
    assert f"{tmp_path}/bad-side.yaml:11: evidence[1]: counter: unknown key 'bogus'" in text
    assert f"{tmp_path}/bad-side.yaml:11: evidence[1]: weight must be" in text
    assert f"{tmp_path}/wrong-name.yaml:1: id 'other' must equal the file name" in text
    assert any(e.startswith(f"{tmp_path}/broken.yaml:") and "YAML error" in e for e in errors)
    assert not any("good-one" in e for e in errors)


def test_cause_without_anchor_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text(
        "id: x\ntitle: t\ndescription: d\nside: kernel\nremedy: r\n"
        "evidence:\n  - counter: {names: [A]}\n    weight: 0.5\n"
    )
    with pytest.raises(CatalogError, match="anchor: true"):
        load_catalog(tmp_path)


def test_docs_page_is_current() -> None:
    """docs/causes.md is generated: `auditor causes --markdown > docs/causes.md` after edits."""
    assert (ROOT / "docs" / "causes.md").read_text() == render(load_default())
