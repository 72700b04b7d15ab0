"""End-to-end: the CI sample of the truth corpus, rehearsed by the corpus runner's per-daemon function.

The daemons whose `sample` key in bench/corpus/daemons.ini names the suite share one small root
(group ci-sample, built and cached like the other corpus roots). Each is rehearsed through the
dynmigrate CLI of this working tree, exactly as bench/corpus/run.py does; the verdict and outcome
of every daemon (and, for a refused one, whether its forced plan worked) are compared with a golden.
After a change of verdicts or plans: --update-goldens, and read the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import run as runner

from conftest import GOLDENS, REPO, Golden
from corpus import DEFAULT_MIRROR, CorpusError, build_root, load_daemons, sample_spec
from e2e.conftest import unavailable
from e2e.harness import E2EUnavailable, check_prerequisites

TREES = runner.Trees("working-tree", "working-tree")


@pytest.fixture(scope="session")
def sample_root(suite: str) -> Path:
    try:
        check_prerequisites()
        mirror = os.environ.get("DYNMIGRATE_E2E_MIRROR", DEFAULT_MIRROR)
        return build_root(sample_spec(load_daemons(), suite, mirror))
    except (E2EUnavailable, CorpusError) as exc:
        reason = str(exc)
    unavailable(reason)


def outcome_line(rec: dict[str, object]) -> str:
    forced = rec["forced"]
    extra = ""
    if isinstance(forced, dict):
        extra = " (forced plan works)" if forced["works"] else " (forced plan fails)"
    return f"{rec['daemon']}: {rec['verdict']} -> {rec['outcome']}{extra}"


def access_not_kept(path: Path) -> list[str]:
    """What nobody could newly read or enter after a rehearsal's migration or rollback, or why it
    was not compared, for every account it migrated (empty: nothing widened)."""
    if not path.exists():
        return []
    out: list[str] = []
    for a in json.loads(path.read_text()).get("accounts", ()):
        f = a["facts"]
        if f["stages"] and (f["access_error"] or not f["access_checked"]):
            out.append(f"{path.name}: {f['account']}: not compared: {f['access_error']}")
        out += [f"{path.name}: {f['account']}: {x}" for x in f["access_widened"]]
    return out


def test_corpus_sample(suite: str, sample_root: Path, tmp_path: Path, golden: Golden) -> None:
    daemons = [d for d in load_daemons() if suite in d.sample]
    assert len(daemons) >= 6
    rehearse = runner.cli_rehearse(REPO / "src", tmp_path / "rehearse.log")
    probe_source = (REPO / "bench/corpus/probe.py").read_bytes()
    lines, widened = [], []
    for daemon in daemons:
        rec = runner.rehearse_daemon(
            daemon, suite, sample_root, TREES, rehearse, tmp_path, probe_source, runner.utc_now
        )
        lines.append(outcome_line(rec))
        # every plan it ran, the forced one of a refused daemon too: no path became readable to others
        for name in (f"{suite}-{daemon.name}.json", f"{suite}-{daemon.name}-forced.json"):
            widened += access_not_kept(tmp_path / name)
    assert widened == [], "read access widened (what nobody can read or enter after the plan ran)"
    golden.check(GOLDENS / "corpus" / f"sample-{suite}.txt", "\n".join(lines) + "\n")
