"""REPORT.md's exposure per unit: `systemd-analyze security` before and after the drop-in, as a
number and the checks that changed, in systemd's own words (facts F7.1-F7.3).

The comparison is golden-compared over the tool's JSON captured from systemd 252 for the
debian-web sample's shortlink.service (tests/plan/security/); a live run checks the same on the
systemd-analyze of this machine, where there is one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import GOLDENS, Golden, scan_sample
from dynmigrate.model.security import Security
from dynmigrate.output.security import NOT_MEASURED, compare, measure
from dynmigrate.plan.planner import PlanOptions, Selection, make_plan
from dynmigrate.render.planfolder.documents import exposure_lines

DATA = Path(__file__).parent / "security"


def captured(side: str) -> tuple[str, list[dict[str, object]]]:
    data = json.loads((DATA / f"shortlink.{side}.json").read_text(encoding="utf-8"))
    return str(data["overall"]), list(data["checks"])


def test_exposure_before_and_after_with_what_improved(golden: Golden) -> None:
    (before, old), (after, new) = captured("before"), captured("after")
    e = compare("shortlink.service", old, new, before, after)
    text = "\n".join(exposure_lines("shortlink.service", Security({e.unit: e}, "")))
    golden.check(GOLDENS / "report" / "exposure-shortlink.md", text + "\n")


def test_a_check_that_got_worse_is_listed_too() -> None:
    old = [
        {
            "name": "PrivateTmp=",
            "description": "Service has access to other software's temporary files",
            "exposure": "0.2",
        }
    ]
    new = [
        {
            "name": "PrivateTmp=",
            "description": "Service has no access to other software's temporary files",
            "exposure": None,
        }
    ]
    e = compare("x.service", new, old, "8.3 EXPOSED", "8.5 EXPOSED")
    assert exposure_lines("x.service", Security({e.unit: e}, "")) == [
        "`systemd-analyze security --offline=yes` exposure: before 8.3 EXPOSED, after 8.5 EXPOSED "
        "(0.0 is tight, 10.0 exposed)",
        "",
        "Worse:",
        "",
        "- PrivateTmp= (0.0 -> 0.2): Service has access to other software's temporary files",
        "",
    ]


def test_not_measured_says_why() -> None:
    assert exposure_lines("x.service", NOT_MEASURED) == [
        "`systemd-analyze security`: plan made with --no-security: exposure not measured",
        "",
    ]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_measured_on_this_machine(in_repo: Path) -> None:
    result = scan_sample("debian-web")
    plan = make_plan(result.queries, result.report, Selection(accounts=("shortlink",)), PlanOptions())
    sec = measure(result.snapshot, plan)
    assert sec.note == ""
    e = sec.units["shortlink.service"]
    assert float(e.after.split()[0]) < float(e.before.split()[0])
    # DynamicUser= implies these (facts F1.11, F7.3)
    assert {"RemoveIPC=", "RestrictSUIDSGID="} <= {c.name for c in e.improved}
    assert e.worse == ()
