"""--format json: the documented, versioned schema (render/schemas/scan.schema.json)."""

from __future__ import annotations

import json

from dynmigrate.model.report import Report
from dynmigrate.render.common import report_data


def render_json(report: Report) -> str:
    return json.dumps(report_data(report), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
