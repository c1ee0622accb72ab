"""A ``report_resolutions`` row, as the resolution of a report. Shared by both engines
(:mod:`interlink.storage.rows`)."""

from __future__ import annotations

from interlink.storage.moderation import ReportResolution
from interlink.storage.rows import Row


def resolution_from_row(row: Row) -> ReportResolution:
    report_id, resolution, actor, at = row
    return ReportResolution(int(str(report_id)), str(resolution), str(actor), float(str(at)))
