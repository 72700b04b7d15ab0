"""Graph, rules, queries and render over snapshots built in memory (tests/builders.py): no root on disk."""

from __future__ import annotations

import json

from builders import account, scan, snapshot, unit
from conftest import GOLDENS, Golden
from dynmigrate.graph.export import graph_data
from dynmigrate.model.common import Confidence, Verdict
from dynmigrate.model.report import Link
from dynmigrate.model.units import LoadState
from dynmigrate.render.jsonout import render_json
from dynmigrate.render.markdown import render_markdown

REDIS = (
    "[Service]\nUser=redis\nExecStart=/usr/bin/redis-server\nReadWritePaths=/srv/redis\nPIDFile=/var/run/redis.pid\n"
)
WEB = "[Service]\nUser=web\nDynamicUser=yes\nExecStart=/usr/bin/web\n"


def test_rules_and_verdicts_over_an_in_memory_snapshot() -> None:
    result = scan(
        snapshot(
            accounts=[account("redis", 120), account("web", 121)],
            units=[unit("redis.service", REDIS), unit("web.service", WEB)],
        )
    )
    found = [(f.rule, f.subject, f.message, str(f.location)) for f in result.findings]
    assert found == [
        (
            "DM208",
            "redis",
            "redis.service: ReadWritePaths=/srv/redis is outside every managed directory",
            "/etc/systemd/system/redis.service:4",
        ),
        (
            "DM210",
            "redis",
            "redis.service: PIDFile=/var/run/redis.pid is outside RuntimeDirectory=",
            "/etc/systemd/system/redis.service:5",
        ),
        (
            "DM202",
            "web",
            "web.service already sets DynamicUser=yes, but static web wins: only the account needs to go",
            "/etc/systemd/system/web.service:3",
        ),
    ]
    verdicts = {a.name: a.verdict for a in result.report.accounts}
    assert verdicts == {"redis": Verdict.NEEDS_MANUAL, "web": Verdict.CONVERTIBLE}


def test_the_graph_links_a_unit_to_its_user_and_queries_skip_masked_units() -> None:
    snap = snapshot(
        accounts=[account("redis", 120)],
        units=[
            unit("redis.service", REDIS),
            unit("old-redis.service", "[Service]\nUser=redis\n", state=LoadState.MASKED),
        ],
    )
    q = scan(snap).queries
    link = Link("redis.service", "User=", Confidence.CERTAIN, "/etc/systemd/system/redis.service:2", "User=redis")
    assert q.units_of("redis") == [link]
    assert [u.name for u in q.units_running_as("redis", min_confidence=Confidence.CERTAIN)] == ["redis.service"]
    assert [lk.unit for lk in q.units_of("redis", include_masked=True)] == ["old-redis.service", "redis.service"]


def test_markdown_of_an_in_memory_report(golden: Golden) -> None:
    result = scan(
        snapshot(
            accounts=[account("redis", 120), account("web", 121)],
            units=[unit("redis.service", REDIS), unit("web.service", WEB)],
        )
    )
    golden.check(GOLDENS / "memory" / "two-services.md", render_markdown(result.report))


def test_a_report_escapes_the_graph_once_as_graph_export_does() -> None:
    # systemd escapes unit names with a backslash (my\x2dapp.service): a report's evidence graph
    # must carry it exactly as `graph --format json` does, not escaped a second time
    result = scan(
        snapshot(
            accounts=[account("app", 120)],
            units=[unit("my\\x2dapp.service", "[Service]\nUser=app\nExecStart=/usr/bin/app\n")],
        )
    )
    exported = graph_data(result.graph)
    reported = json.loads(render_json(result.report))["evidence"]["graph"]
    assert "unit:my\\\\x2dapp.service" in [n["id"] for n in exported["nodes"]]
    assert reported == exported
