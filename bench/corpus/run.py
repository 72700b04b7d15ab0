"""The truth corpus runner: every daemon of daemons.ini rehearsed by `dynmigrate rehearse`, one at a time.

    python3 bench/corpus/run.py [--suite SUITE] [--only NAME]... [--group GROUP] [--again]
    python3 bench/corpus/run.py render          # RESULTS.md again from results.json

Per daemon and suite, in the cached corpus root of its group (`corpus.py build` makes them; the
runner never builds one), it calls

    dynmigrate rehearse ROOT --trusted-image --account ACCOUNT --setup ... --probe UNIT=PROBE --format json

The setup enables and starts the units the package had enabled (the root records them; one that
fails to start on the package defaults is left to the setup), then runs
the daemon's own setup; the probe is the daemon's functional probe. A REFUSED daemon is rehearsed
again with --force, recording whether the forced plan works and whether its first error names
what the refusal said. A daemon with a `manual` key has it run before stage 2 (--before-stage2).

Results are appended to results.json (beside this file) after every daemon, so a run can stop and
resume: a daemon that already has a result for the current tree hashes of src/ and rules/ is
skipped unless --again. The rehearsals run on a frozen export of the committed src/ and rules/
(`git archive HEAD`), so that editing the working tree while the runner runs never mixes code
into results stamped with another hash; uncommitted changes under src/ or rules/ are refused.
RESULTS.md is rewritten from the JSON after every daemon.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from corpus import (
    DEFAULT_MIRROR,
    SUITES,
    CorpusError,
    Daemon,
    RootSpec,
    cache_dir,
    load_daemons,
    root_specs,
)

HERE: Final = Path(__file__).resolve().parent
REPO: Final = HERE.parents[1]
RESULTS_JSON: Final = HERE / "results.json"
RESULTS_MD: Final = HERE / "RESULTS.md"
SCHEMA_VERSION: Final = 1
PROBE_IN_COPY: Final = "/usr/local/lib/dynmigrate-corpus/probe.py"
ENABLED_RECORD: Final = "/var/lib/dynmigrate-corpus/enabled"
REHEARSAL_TIMEOUT: Final = 2400.0
# Outcomes of the rehearse command, plus ERROR: the runner could not get a rehearsal at all
# (the command failed before it had a result); such a daemon is listed, never counted as agreeing.
ERROR: Final = "ERROR"
USAGE_EXIT: Final = 2
DEDICATED: Final = ("AUTO", "MANUAL-OK", "FAIL")
STOPWORDS: Final = frozenset(
    (
        *("the", "and", "for", "not", "with", "that", "this", "from", "its", "has", "have", "can", "cannot"),
        *("into", "under", "when", "what", "which", "would", "there", "their", "than", "then", "been"),
        *("were", "will", "only", "unit", "units", "service", "account", "plan", "stage", "failed", "error"),
    )
)


class RunnerError(Exception):
    """The runner cannot start; the message says why."""


@dataclass(frozen=True, slots=True)
class Trees:
    src: str
    rules: str


# ------------------------------------------------------------------------------------ pure parts


def probe_prelude() -> str:
    return f"PROBE='python3 {PROBE_IN_COPY}'; export PROBE; "


def setup_commands(daemon: Daemon, probe_source: bytes) -> tuple[str, ...]:
    """What --setup runs in the booted copy: the probe copied in, the package's units enabled, the setup."""
    blob = base64.b64encode(probe_source).decode("ascii")
    install = (
        f"mkdir -p {os.path.dirname(PROBE_IN_COPY)} && printf %s {blob} | base64 -d > {PROBE_IN_COPY}"
        f" && chmod 0644 {PROBE_IN_COPY}"
    )
    # enable, then start, as corpus_check does: a unit that fails on the package's defaults in the
    # copy (coturn finds no address but lo to listen on) is the admin's to configure, and the
    # daemon's setup restarts it; the probe after the setup says whether it works
    enable = (
        f"units=$(awk -v p={daemon.package} '$1 == p {{ print $2 }}' {ENABLED_RECORD}); "
        'if [ -n "$units" ]; then systemctl enable -- $units'
        ' && { systemctl start -- $units || echo "not started on the package defaults: $units" >&2; }; fi'
    )
    return (install, enable, probe_prelude() + daemon.setup)


def rehearse_argv(daemon: Daemon, root: Path, probe_source: bytes, output: Path, *, force: bool) -> list[str]:
    argv = ["rehearse", str(root), "--trusted-image", "--format", "json", "-o", str(output)]
    argv += ["--unit", daemon.unit] if daemon.account == "-" else ["--account", daemon.account]
    for cmd in setup_commands(daemon, probe_source):
        argv += ["--setup", cmd]
    argv += ["--probe", f"{daemon.unit}={probe_prelude()}{daemon.probe}"]
    if daemon.manual:
        argv += ["--before-stage2", daemon.manual]
    if force:
        argv.append("--force")
    return argv


def script_env(daemon: Daemon) -> dict[str, str]:
    """What the plan's scripts get from the environment for this daemon: a longer probe timeout for
    one whose probe outlasts the default (a JVM that deploys an archive after it starts)."""
    return {"DYNMIGRATE_PROBE_TIMEOUT": str(daemon.probe_timeout)} if daemon.probe_timeout else {}


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9][a-z0-9_.@/-]{2,}", text.lower()) if w not in STOPWORDS}


def error_matches_reason(error: str, reason: str) -> bool:
    """The forced plan's first error names something the refusal named (a word of 3+ characters
    other than the common ones: a path, a unit, a bus name, a directive). A heuristic: both texts
    are kept in the results so that a reader can judge."""
    return bool(error) and bool(_words(error) & _words(reason))


def first_error(account: Mapping[str, Any]) -> str:
    """The line that says what went wrong: a path the plan made readable to other users, else a
    failed step's error, else the classifier's reason for a FAIL or BROKEN-BEFORE, else the first
    journal error (even when everything worked).
    A stage that stopped on its health check says only that; the failed probe's answer, which
    says what did not work, follows it."""
    facts = account["facts"]
    if facts.get("access_widened"):
        # the plan made a path readable to other users: a broken safety rule comes before anything
        return f"read access widened: {facts['access_widened'][0]}"
    for step in (*facts.get("setup", ()), *facts["stages"], *facts["rollbacks"]):
        if not step["ok"]:
            error = str(step["error"] or f"{step['name']}: exit {step['exit_code']}")
            if "health check failed" in error:
                probes = [c["probe_answer"] for c in facts.get("migrated", ()) if c.get("probe_ok") is False]
                error += "".join(f"; the probe said: {answer}" for answer in probes[:1])
            return error
    if account["outcome"] in ("FAIL", "BROKEN-BEFORE"):
        return str(account["why"])
    return str(facts.get("journal_error", ""))


def pick_account(data: Mapping[str, Any], daemon: Daemon) -> Mapping[str, Any] | None:
    accounts: list[Mapping[str, Any]] = list(data.get("accounts", ()))
    if daemon.account != "-":
        return next((a for a in accounts if a["facts"]["account"] == daemon.account), None)
    return next((a for a in accounts if daemon.unit in a["facts"]["units"]), accounts[0] if accounts else None)


def agreement(verdict: str, outcome: str, forced: Mapping[str, Any] | None) -> str:
    """Whether the verdict predicted the outcome: yes, no, or excluded (BROKEN-BEFORE, ERROR)."""
    if outcome in ("BROKEN-BEFORE", ERROR):
        return "excluded"
    if outcome == "AUTO":
        ok = verdict == "convertible"
    elif outcome == "MANUAL-OK":
        ok = verdict == "needs-manual-steps"
    elif outcome == "N/A":
        ok = verdict in ("blocked", "not-a-service-account", "-")
    elif outcome == "REFUSED":
        ok = verdict == "blocked" and forced is not None and not forced["works"] and bool(forced["matches_reason"])
    else:  # FAIL: no verdict predicts a failure
        ok = False
    return "yes" if ok else "no"


def record(
    daemon: Daemon,
    suite: str,
    trees: Trees,
    package_version: str,
    data: Mapping[str, Any] | None,
    forced_data: Mapping[str, Any] | None,
    *,
    error: str = "",
    usage: bool = False,
    date: str,
) -> dict[str, Any]:
    """One line of results.json from the rehearsal's JSON (and the forced one's, for a REFUSED daemon)."""
    env: Mapping[str, Any] = (data or {}).get("environment", {})
    account = pick_account(data, daemon) if data is not None else None
    if account is None:
        why = error or str((data or {}).get("error") or "the rehearsal named no account of this daemon")
        verdict, outcome, dyn, first, probe, rollback = "-", ERROR, None, why, "", ""
        if usage:
            # rehearse found no static account to migrate (none runs the unit, or the named account
            # does not exist in the set-up copy): nothing to migrate; the message is kept as why
            outcome, first = "N/A", ""
    else:
        facts = account["facts"]
        verdict, outcome, why = facts["verdict"], account["outcome"], account["why"]
        dyn, first = account["dynamic_uid"], first_error(account)
        probe, rollback = account["probe_answer"], account["rollback"]
    forced = forced_record(daemon, account, forced_data)
    if forced is not None and forced["broken_before"]:
        # the forced rehearsal found the daemon not working before any change: the refusal
        # cannot be checked against an outcome, as for any other daemon broken in the copy
        outcome, why = "BROKEN-BEFORE", f"{forced['why']} (seen by the forced rehearsal; the plan was refused)"
        first = forced["first_error"]
    elif forced is not None and not forced["works"]:
        first = forced["first_error"]  # what a refused daemon's forced plan ran into
    return {
        "suite": suite,
        "daemon": daemon.name,
        "package": daemon.package,
        "package_version": package_version,
        "unit": daemon.unit,
        "account": daemon.account,
        "systemd_version": env.get("systemd_version"),
        "kernel": kernel_series(str(env.get("kernel", ""))),
        "verdict": verdict,
        "reason": account["facts"]["reason"] if account is not None else "",
        "outcome": outcome,
        "why": why,
        "agreement": agreement(verdict, outcome, forced),
        "dynamic_uid": dyn,
        "first_error": first,
        "probe": probe,
        "rollback": rollback,
        "forced": forced,
        "manual": daemon.manual,
        "seconds": (data or {}).get("seconds"),
        "date": date,
        "src_tree": trees.src,
        "rules_tree": trees.rules,
    }


def forced_record(
    daemon: Daemon, account: Mapping[str, Any] | None, forced_data: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """What the plan forced past a refusal did: did it work, and did it fail for the stated reason."""
    if forced_data is None or account is None:
        return None
    fa = pick_account(forced_data, daemon)
    if fa is None:
        return None
    works = fa["outcome"] == "REFUSED" and "the forced plan worked" in fa["why"]
    ferr = "" if works else first_error({**fa, "outcome": "FAIL"})
    # what the daemon itself logged first in the forced copy counts as its error too: a failed
    # health check names the check, the journal names the cause
    journal = "" if works else str(fa["facts"].get("journal_error", ""))
    return {
        "works": works,
        "broken_before": fa["outcome"] == "BROKEN-BEFORE",
        "first_error": ferr,
        "journal_error": journal,
        "matches_reason": (not works) and error_matches_reason(f"{ferr}\n{journal}", account["facts"]["reason"]),
        "dynamic_uid": fa["dynamic_uid"],
        "why": fa["why"],
    }


def kernel_series(release: str) -> str:
    """6.1.0-28-amd64 -> 6.1: the series says which overlayfs and id-mapping features there were;
    the full release string names one machine's build and is not kept."""
    return ".".join(release.split(".")[:2]) if release else ""


def done_keys(results: Iterable[Mapping[str, Any]], trees: Trees) -> set[tuple[str, str]]:
    """(suite, daemon) pairs that already have a result for these tree hashes."""
    return {(r["suite"], r["daemon"]) for r in results if r["src_tree"] == trees.src and r["rules_tree"] == trees.rules}


def pending(
    daemons: Sequence[Daemon],
    suite: str,
    results: Iterable[Mapping[str, Any]],
    trees: Trees,
    *,
    only: Sequence[str] = (),
    group: str | None = None,
    again: bool = False,
) -> list[Daemon]:
    """The daemons of the suite still to rehearse, in daemons.ini order."""
    done = set() if again else done_keys(results, trees)
    return [
        d
        for d in daemons
        if suite in d.suites
        and (not only or d.name in only)
        and (group is None or d.group == group)
        and (suite, d.name) not in done
    ]


def latest(results: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], Mapping[str, Any]]:
    """The last result of every (suite, daemon): the file is in the order they were run."""
    out: dict[tuple[str, str], Mapping[str, Any]] = {}
    for r in results:
        out[(r["suite"], r["daemon"])] = r
    return out


def _percent(part: int, whole: int) -> str:
    # one decimal, rounded down: 28/33 is 84.8%, and a target of 85% is not met by rounding
    return f"{int(1000 * part / whole) / 10:.1f}% ({part}/{whole})" if whole else "- (0/0)"


def _cell(value: object) -> str:
    text = "-" if value is None or value == "" else str(value)
    return text.replace("|", "\\|").replace("\n", " ")[:160]


def summary(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    judged = [r for r in rows if r["agreement"] != "excluded"]
    agree = sum(r["agreement"] == "yes" for r in judged)
    forced_works = [r for r in rows if r["outcome"] == "REFUSED" and r["forced"] and r["forced"]["works"]]
    dedicated = [r for r in rows if r["outcome"] in DEDICATED] + forced_works
    auto = sum(r["outcome"] == "AUTO" for r in dedicated)
    convertible_fail = sum(r["verdict"] == "convertible" and r["outcome"] == "FAIL" for r in rows)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
    return [
        f"- daemons: {len(rows)} ({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))})",
        f"- verdict agrees with outcome (BROKEN-BEFORE and ERROR excluded): {_percent(agree, len(judged))}",
        f"- AUTO among daemons with a dedicated account (AUTO, MANUAL-OK, FAIL, REFUSED whose forced plan "
        f"works): {_percent(auto, len(dedicated))}",
        f"- convertible but FAIL: {convertible_fail}",
        f"- BROKEN-BEFORE (at most 10% of the daemons): {_percent(counts.get('BROKEN-BEFORE', 0), len(rows))}",
    ]


COLUMNS: Final = (
    "daemon",
    "package version",
    "account",
    "verdict",
    "outcome",
    "agreement",
    "dynamic UID",
    "first error",
)


def _row(r: Mapping[str, Any]) -> str:
    outcome = r["outcome"]
    if outcome == "REFUSED" and r["forced"]:
        f = r["forced"]
        outcome += (
            " (forced: works)" if f["works"] else f" (forced: fails, {'matches' if f['matches_reason'] else 'other'})"
        )
    cells = (
        r["daemon"],
        r["package_version"],
        r["account"],
        r["verdict"],
        outcome,
        r["agreement"],
        r["dynamic_uid"],
        r["first_error"],
    )
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def render_results(results: Sequence[Mapping[str, Any]], daemons: Sequence[Daemon]) -> str:
    """RESULTS.md: per suite the environment, the summary figures and one row per daemon."""
    last = latest(results)
    out = [
        "# Truth corpus results",
        "",
        "Written by `bench/corpus/run.py` from `results.json` (the last result of every daemon and suite).",
        "Verdict and outcome agree when convertible ⇔ AUTO, needs-manual-steps ⇔ MANUAL-OK, blocked ⇔",
        "REFUSED with the forced plan failing for the stated reason, or N/A with a blocked or",
        "not-a-service-account verdict. Whether a forced plan's failure matches the stated reason is",
        "judged by shared words (a path, unit or name) between the reason and the forced plan's first",
        "error or the first error the daemon logged; all three texts are in results.json.",
        "",
    ]
    for suite in SUITES:
        rows = [last[(suite, d.name)] for d in daemons if (suite, d.name) in last]
        if not rows:
            continue
        missing = [d.name for d in daemons if suite in d.suites and (suite, d.name) not in last]
        systemd = sorted({str(r["systemd_version"]) for r in rows if r["systemd_version"]})
        kernels = sorted({r["kernel"] for r in rows if r["kernel"]})
        trees = sorted({f"src {r['src_tree'][:12]}, rules {r['rules_tree'][:12]}" for r in rows})
        dates = sorted(r["date"] for r in rows)
        out += [
            f"## {suite}",
            "",
            f"- systemd {', '.join(systemd) or '-'}; kernel series {', '.join(kernels) or '-'}",
            f"- run {dates[0]} to {dates[-1]}",
            f"- tree hashes (`git rev-parse HEAD:src`, `HEAD:rules`): {'; '.join(trees)}",
        ]
        out += summary(rows)
        if missing:
            out.append(f"- not rehearsed yet: {', '.join(missing)}")
        out += ["", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        out += [_row(r) for r in rows]
        out.append("")
    if len(out) == 8:
        out += ["No results yet.", ""]
    return "\n".join(out)


def load_results(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise RunnerError(f"{path}: {exc}") from None
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
        raise RunnerError(f"{path}: not a results file of schema version {SCHEMA_VERSION}")
    return list(data["results"])


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def save_results(path: Path, results: Sequence[Mapping[str, Any]]) -> None:
    doc = {"schema_version": SCHEMA_VERSION, "results": list(results)}
    _write_atomic(path, json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n")


# ------------------------------------------------------------------------------------ the machine


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True).stdout.strip()


def current_trees() -> Trees:
    dirty = git("status", "--porcelain", "--", "src", "rules")
    if dirty:
        raise RunnerError(
            "src/ or rules/ has uncommitted changes: commit them first (results carry HEAD's tree hashes)"
        )
    return Trees(git("rev-parse", "HEAD:src"), git("rev-parse", "HEAD:rules"))


def export_code(into: Path) -> Path:
    """The committed src/ and rules/ unpacked into a folder; the rehearsals import dynmigrate from it."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "HEAD", "src", "rules"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "src"


def package_version(root: Path, package: str) -> str:
    """The installed version, from the root's dpkg status (read only)."""
    try:
        text = (root / "var/lib/dpkg/status").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "-"
    for stanza in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line and not line.startswith(" "))
        if fields.get("Package") == package and "installed" in fields.get("Status", ""):
            return fields.get("Version", "-")
    return "-"


def find_root(spec: RootSpec) -> Path | None:
    root = cache_dir() / spec.key / "root"
    return root if root.is_dir() else None


# ARGV, and the variables the plan's scripts take from the caller (DYNMIGRATE_PROBE_TIMEOUT)
Rehearse = Callable[[Sequence[str], Mapping[str, str]], tuple[int, str, Mapping[str, Any] | None]]


def cli_rehearse(pythonpath: Path, log: Path) -> Rehearse:
    """A function that runs `dynmigrate ARGV` from the exported code and returns (exit, stderr tail, JSON)."""

    def run(argv: Sequence[str], script_env: Mapping[str, str]) -> tuple[int, str, Mapping[str, Any] | None]:
        out = Path(argv[argv.index("-o") + 1])
        env = {**os.environ, **script_env, "PYTHONPATH": str(pythonpath)}
        with open(log, "a", encoding="utf-8") as err:
            err.write(f"\n$ dynmigrate {' '.join(a if len(a) < 200 else a[:60] + '...' for a in argv)}\n")
            err.flush()
            try:
                proc = subprocess.run(
                    [sys.executable, "-m", "dynmigrate", *argv],
                    stdin=subprocess.DEVNULL,
                    stdout=err,
                    stderr=subprocess.PIPE,
                    text=True,
                    env=env,
                    timeout=REHEARSAL_TIMEOUT,
                    check=False,
                )
                code, stderr = proc.returncode, proc.stderr
            except subprocess.TimeoutExpired:
                code, stderr = 124, f"timed out after {REHEARSAL_TIMEOUT:.0f} s"
            err.write(stderr)
        data: Mapping[str, Any] | None = None
        with contextlib.suppress(OSError, json.JSONDecodeError):
            data = json.loads(out.read_text(encoding="utf-8"))
        lines = [x for x in stderr.splitlines() if x.strip() and not x.startswith("rehearse: ")]
        return code, (lines[-1] if lines else f"exit {code}"), data

    return run


def rehearse_daemon(
    daemon: Daemon,
    suite: str,
    root: Path,
    trees: Trees,
    rehearse: Rehearse,
    scratch: Path,
    probe_source: bytes,
    date: Callable[[], str],
) -> dict[str, Any]:
    """Rehearse one daemon (and again with --force when it was refused); one result record."""
    out = scratch / f"{suite}-{daemon.name}.json"
    out.unlink(missing_ok=True)
    code, tail, data = rehearse(rehearse_argv(daemon, root, probe_source, out, force=False), script_env(daemon))
    error = "" if data is not None else tail
    forced_data = None
    account = pick_account(data, daemon) if data is not None else None
    if account is not None and account["outcome"] == "REFUSED" and not account["facts"]["forced"]:
        forced_out = scratch / f"{suite}-{daemon.name}-forced.json"
        forced_out.unlink(missing_ok=True)
        _, _, forced_data = rehearse(
            rehearse_argv(daemon, root, probe_source, forced_out, force=True), script_env(daemon)
        )
    return record(
        daemon,
        suite,
        trees,
        package_version(root, daemon.package),
        data,
        forced_data,
        error=error,
        usage=data is None and code == USAGE_EXIT,
        date=date(),
    )


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def run(args: argparse.Namespace) -> int:
    daemons = load_daemons()
    results = load_results(args.results)
    if args.command == "render":
        _write_atomic(args.markdown, render_results(results, daemons))
        return 0
    if os.geteuid() != 0:
        raise RunnerError("rehearsals need root")
    trees = current_trees()
    todo = pending(daemons, args.suite, results, trees, only=args.only, group=args.group, again=args.again)
    unknown = sorted(set(args.only) - {d.name for d in daemons})
    if unknown:
        raise RunnerError(f"--only names unknown daemons: {', '.join(unknown)}")
    specs = {s.group: s for s in root_specs(daemons, args.suite, args.mirror)}
    probe_source = (HERE / "probe.py").read_bytes()
    print(f"corpus: {len(todo)} daemon(s) to rehearse on {args.suite}; src {trees.src[:12]}, rules {trees.rules[:12]}")
    with tempfile.TemporaryDirectory(prefix="dynmigrate-corpus-run-") as tmp:
        code = export_code(Path(tmp))
        rehearse = cli_rehearse(code, args.log)
        for n, daemon in enumerate(todo, 1):
            root = find_root(specs[daemon.group])
            if root is None:
                where = f"{args.suite}/{daemon.group}"
                print(f"corpus: [{n}/{len(todo)}] {daemon.name}: no root for {where} (corpus.py build)")
                continue
            started = time.monotonic()
            print(f"corpus: [{n}/{len(todo)}] {daemon.name} ...", flush=True)
            rec = rehearse_daemon(daemon, args.suite, root, trees, rehearse, Path(tmp), probe_source, utc_now)
            results = [*load_results(args.results), rec]
            save_results(args.results, results)
            _write_atomic(args.markdown, render_results(results, daemons))
            print(
                f"corpus: [{n}/{len(todo)}] {daemon.name}: {rec['verdict']} -> {rec['outcome']} "
                f"({rec['agreement']}), {time.monotonic() - started:.0f} s",
                flush=True,
            )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="run.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", nargs="?", choices=("run", "render"), default="run")
    parser.add_argument("--suite", choices=SUITES, default="bookworm")
    parser.add_argument("--only", action="append", default=[], metavar="NAME", help="only this daemon (repeatable)")
    parser.add_argument("--group", help="only the daemons of this root group")
    parser.add_argument("--again", action="store_true", help="rehearse daemons that already have a result")
    parser.add_argument("--results", type=Path, default=RESULTS_JSON)
    parser.add_argument("--markdown", type=Path, default=RESULTS_MD)
    parser.add_argument("--log", type=Path, default=Path("/var/tmp/dynmigrate-corpus-run.log"))
    parser.add_argument("--mirror", default=os.environ.get("DYNMIGRATE_E2E_MIRROR", DEFAULT_MIRROR))
    args = parser.parse_args(argv)
    try:
        return run(args)
    except (CorpusError, RunnerError) as err:
        print(f"corpus: {err}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as err:
        print(f"corpus: {' '.join(map(str, err.cmd))} failed (exit {err.returncode})", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
