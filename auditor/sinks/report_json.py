"""The diagnosis report as one JSON document (schema ``auditor.report/1``)."""

from __future__ import annotations

import json
from typing import IO

from auditor.correlate.report import Report


def write_report_json(report: Report, out: IO[str]) -> None:
    json.dump(report.to_json(), out, ensure_ascii=False, indent=2, default=str)
    out.write("\n")
