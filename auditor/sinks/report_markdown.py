"""The diagnosis as Markdown, for pasting into an incident ticket."""

from __future__ import annotations

from auditor.correlate.report import Report
from auditor.models import Finding


def _when(f: Finding) -> str:
    if f.first_seen is None:
        return "-"
    a = f.first_seen.isoformat(timespec="seconds")
    b = f.last_seen.isoformat(timespec="seconds") if f.last_seen else a
    return a if a == b else f"{a} – {b}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(report: Report) -> str:
    lines = [f"## Connection resets on {report.host or 'this host'}", ""]
    window = (
        f"Window {report.start.isoformat(timespec='seconds')} – "
        f"{report.end.isoformat(timespec='seconds')}: "
        if report.start and report.end
        else ""
    )
    lines.append(
        f"{window}**{report.total}** resets, "
        f"{report.explained} explained ({report.intentional} intentional), "
        f"{sum(u.resets for u in report.unexplained)} unexplained."
    )
    lines.append("")
    if not report.findings:
        lines += ["No cause found with evidence.", ""]
    for i, f in enumerate(report.findings, 1):
        tag = " (intentional)" if f.intentional else ""
        lines.append(f"### {i}. `{f.cause}`: {f.title}{tag}")
        lines.append("")
        lines.append(
            f"- Confidence: **{f.confidence}** ({f.score:.2f}); side: {f.side}; "
            f"resets: {f.resets}; ports: {', '.join(map(str, f.ports)) or '-'}; {_when(f)}"
        )
        if f.rule:
            lines.append(f"- Rule: `{f.rule.text}`{f.rule.counted}")
        if f.limit:
            lines.append(f"- Limit: `{f.limit.brief}`")
        if f.runners_up:
            lines.append(
                "- Also considered: " + ", ".join(f"{c} ({s:.2f})" for c, s in f.runners_up)
            )
        lines.append(f"- Remedy: {f.remedy}")
        lines += ["", "| evidence | at |", "|---|---|"]
        for e in f.evidence:
            at = f"{e.source}:{e.line}" if e.line else e.source
            lines.append(f"| {_cell(e.text[:200])} | `{_cell(at)}` |")
        lines.append("")
    if report.unexplained:
        lines += [
            "### Unexplained",
            "",
            "| resets | ports | upstream | first seen | kinds |",
            "|---|---|---|---|---|",
        ]
        for u in report.unexplained:
            kinds = ", ".join(f"{a} {n}" for a, n in sorted(u.actions.items()))
            first = u.first_seen.isoformat(timespec="seconds") if u.first_seen else "-"
            lines.append(
                f"| {u.resets} | {', '.join(map(str, u.ports)) or '-'} | "
                f"{u.upstream or '-'} | {first} | {_cell(kinds)} |"
            )
        lines.append("")
    if report.notes:
        lines += ["### Notes (risks without reset events)", ""]
        lines += [f"- `{n.cause}`: {n.text}" for n in report.notes]
        lines.append("")
    if report.sources:
        used = [s for s in report.sources if s.used]
        lines.append(f"Sources used: {', '.join(f'`{s.path}` ({s.kind})' for s in used) or 'none'}")
        lines.append("")
    return "\n".join(lines)
