"""The diagnosis as Markdown, for pasting into an incident ticket.

Every value that may come from an input (host name, rule text, evidence, paths,
titles and remedies filled with values) goes through :mod:`auditor.sinks.text`:
identifiers, rules, evidence and paths as code spans with safe fencing, prose as
text with every ASCII punctuation escaped. No HTML, link, image, heading or
emphasis from an input can form, and one-line fields stay on one line.
"""

from __future__ import annotations

from auditor.correlate.report import Report
from auditor.models import Finding
from auditor.sinks.text import clip, md_code, md_text


def _when(f: Finding) -> str:
    if f.first_seen is None:
        return "-"
    a = f.first_seen.isoformat(timespec="seconds")
    b = f.last_seen.isoformat(timespec="seconds") if f.last_seen else a
    return a if a == b else f"{a} – {b}"


def _row(*cells: str) -> str:
    return "| " + " | ".join(cells) + " |"


def render_markdown(report: Report) -> str:
    """The report as Markdown; see the module docstring for how input text is kept inert."""
    host = md_code(report.host) if report.host else "this host"
    lines = [f"## Connection resets on {host}", ""]
    window = (
        f"Window {md_text(report.start.isoformat(timespec='seconds'))} – "
        f"{md_text(report.end.isoformat(timespec='seconds'))}: "
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
        lines += _finding(i, f)
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
            lines.append(_row(
                str(u.resets), md_text(", ".join(map(str, u.ports)) or "-"),
                md_code(u.upstream or "-", in_table=True), md_text(first),
                md_code(kinds, in_table=True),
            ))
        lines.append("")
    if report.notes:
        lines += ["### Notes (risks without reset events)", ""]
        lines += [f"- {md_code(n.cause)}: {md_text(n.text)}" for n in report.notes]
        lines.append("")
    if report.sources:
        used = [s for s in report.sources if s.used]
        names = ", ".join(f"{md_code(s.path)} ({md_text(s.kind)})" for s in used)
        lines.append(f"Sources used: {names or 'none'}")
        lines.append("")
    return "\n".join(lines)


def _finding(i: int, f: Finding) -> list[str]:
    tag = " (intentional)" if f.intentional else ""
    ports = ", ".join(map(str, f.ports)) or "-"
    lines = [f"### {i}. {md_code(f.cause)}: {md_text(f.title)}{tag}", ""]
    lines.append(
        f"- Confidence: **{md_text(f.confidence)}** ({f.score:.2f}); side: {md_text(f.side)}; "
        f"resets: {f.resets}; ports: {md_text(ports)}; {md_text(_when(f))}"
    )
    if f.rule:
        lines.append(f"- Rule: {md_code(f.rule.text)}{md_text(f.rule.counted)}")
    if f.limit:
        lines.append(f"- Limit: {md_code(f.limit.brief)}")
    if f.runners_up:
        lines.append("- Also considered: " + ", ".join(
            f"{md_code(c)} ({s:.2f})" for c, s in f.runners_up))
    lines.append(f"- Remedy: {md_text(f.remedy)}")
    lines += ["", "| evidence | at |", "|---|---|"]
    for e in f.evidence:
        at = f"{e.source}:{e.line}" if e.line else e.source
        lines.append(_row(md_code(clip(e.text, 200), in_table=True), md_code(at, in_table=True)))
    lines.append("")
    return lines
