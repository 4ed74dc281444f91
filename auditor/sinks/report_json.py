"""The diagnosis report as one JSON document (schema ``auditor.report/1``), always valid UTF-8."""

from __future__ import annotations

from typing import IO

from auditor.correlate.report import Report
from auditor.sinks.text import dumps


def write_report_json(report: Report, out: IO[str]) -> None:
    out.write(dumps(report.to_json(), indent=2))
    out.write("\n")
