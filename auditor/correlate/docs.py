"""docs/causes.md, generated from the cause catalog (``auditor causes --markdown``)."""

from __future__ import annotations

from auditor import vocabulary
from auditor.correlate.catalog import Catalog, Cause

HEADER = """# Causes of connection resets

<!-- Generated from rules/*.yaml by `auditor causes --markdown > docs/causes.md`; do not edit. -->

Every finding of `auditor diagnose` names one of these causes by its stable id. Each cause
lists the evidence it looks for and how much each piece weighs (scores combine by noisy-or;
a cause is never reported without one of its *anchor* pieces of evidence). Causes of role
*risk* are configuration risks: shown as notes, never findings on their own. Evidence marked
*risk* shows its cause without any log (`auditor limits`, the notes of a diagnosis). Every
action, fact and placeholder a cause names is in the [vocabulary](#vocabulary) below.
"""


def _evidence_line(
    spec_kind: str, label: str, weight: float, anchor: bool, risk: bool, detail: str
) -> str:
    mark = " (anchor)" if anchor else ""
    mark += " (risk)" if risk else ""
    return f"| {label} | {spec_kind}: {detail} | {weight:.2f}{mark} |"


def _detail(cause: Cause) -> list[str]:
    rows = ["| evidence | matches | weight |", "|---|---|---|"]
    for s in cause.evidence:
        parts = []
        for key, value in s.params.items():
            text = ", ".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
            parts.append(f"{key} `{text}`".replace("|", "\\|"))
        rows.append(
            _evidence_line(s.kind, s.label, s.weight, s.anchor, s.risk, "; ".join(parts) or "-")
        )
    return rows


def render(catalog: Catalog) -> str:
    lines = [HEADER, "| id | side | title |", "|---|---|---|"]
    for c in catalog.causes:
        flag = " (intentional)" if c.intentional else " (risk)" if c.role == "risk" else ""
        lines.append(f"| [`{c.id}`](#{c.id}) | {c.side} | {c.title}{flag} |")
    for c in catalog.causes:
        lines += ["", f"## {c.id}", "", f"**{c.title}**", ""]
        tags = [f"side: {c.side}", f"role: {c.role}"]
        if c.intentional:
            tags.append("intentional: yes")
        if c.yields_to:
            tags.append("yields to: " + ", ".join(f"[`{y}`](#{y})" for y in c.yields_to))
        lines += [
            " · ".join(tags),
            "",
            c.description,
            "",
            *_detail(c),
            "",
            "Remedy:",
            "",
            "> " + c.remedy.replace("\n", " "),
        ]
    lines += _vocabulary()
    return "\n".join(lines) + "\n"


def _vocabulary() -> list[str]:
    """The registry of :mod:`auditor.vocabulary`: actions, facts and placeholders."""
    lines = ["", "## Vocabulary", "", "### Event actions", "", "| action | roles | meaning |",
             "|---|---|---|"]
    for a in vocabulary.ACTIONS.values():
        lines.append(f"| `{a.name}` | {', '.join(sorted(a.roles))} | {a.doc} |")
    lines += ["", "### Facts", "", "| fact | parameters | stated by | meaning |",
              "|---|---|---|---|"]
    for f in vocabulary.FACTS.values():
        who = "the engine, per group" if f.group else "a fact builder"
        lines.append(f"| `{f.name}` | {', '.join(f.params) or '-'} | {who} | {f.doc} |")
    lines += ["", "### Remedy placeholders", "", "| placeholder | always known | meaning |",
              "|---|---|---|"]
    for p in vocabulary.PLACEHOLDERS.values():
        lines.append(f"| `{{{p.name}}}` | {'yes' if p.always else 'no'} | {p.doc} |")
    return lines
