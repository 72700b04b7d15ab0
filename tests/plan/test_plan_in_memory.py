"""The planner and the plan folder's files over snapshots built in memory (tests/builders.py):
the plan's decisions and documents without a root on disk."""

from __future__ import annotations

import json

from builders import account, scan, snapshot, unit
from conftest import GOLDENS, Golden
from dynmigrate.model.plan import Refusal, RefusalKind
from dynmigrate.output.write import plan_files
from dynmigrate.plan.planner import PlanOptions, Selection, make_plan
from dynmigrate.render.planfolder.documents import plan_data, userdel_plan

CACHE = (
    "[Unit]\nDescription=a cache\n\n[Service]\nUser=cache\nExecStart=/usr/bin/cached --port 11211\n"
    "StateDirectory=cache\nLogsDirectory=cache\nRuntimeDirectory=cache\nPIDFile=/run/cache/cached.pid\n\n"
    "[Install]\nWantedBy=multi-user.target\n"
)
# two units of one account: the plan gives both the same drop-in user (F1.10), stage 2 asks to
# acknowledge the shared account (DM102)
WORKER = "[Service]\nUser=jobs\nExecStart=/usr/bin/worker\nCacheDirectory=jobs\n"
SCHEDULER = "[Service]\nUser=jobs\nExecStart=/usr/bin/scheduler\n"


def _folder(files: dict[str, tuple[str, int]]) -> str:
    return "".join(f"=== {name} (mode {mode:o})\n{text}" for name, (text, mode) in sorted(files.items()))


def test_plan_of_an_in_memory_snapshot(golden: Golden) -> None:
    result = scan(
        snapshot(
            accounts=[account("cache", 120), account("jobs", 121)],
            units=[
                unit("cache.service", CACHE),
                unit("jobs-worker.service", WORKER),
                unit("jobs-scheduler.service", SCHEDULER),
            ],
        )
    )
    plan = make_plan(result.queries, result.report, Selection(accounts=("cache", "jobs")), PlanOptions())
    assert plan.refused == ()
    text = _folder(plan_files(plan))
    text += "=== plan.json\n" + json.dumps(plan_data(plan), indent=2, sort_keys=True) + "\n"
    text += "=== userdel plan\n" + userdel_plan(plan)
    golden.check(GOLDENS / "memory" / "plan-cache-and-jobs.txt", text)


def test_a_base_passwd_account_is_refused_as_blocked() -> None:
    result = scan(snapshot(accounts=[account("mail", 8)], units=[unit("exim4.service", "[Service]\nUser=mail\n")]))
    plan = make_plan(result.queries, result.report, Selection(units=("exim4",)), PlanOptions())
    assert plan.accounts == ()
    assert [(r.account, r.kind) for r in plan.refused] == [("mail", RefusalKind.BLOCKED)]
    assert isinstance(plan.refused[0], Refusal)
    assert plan.refused[0].why.startswith("blocked: DM106 UID 8 is a base-passwd account")
