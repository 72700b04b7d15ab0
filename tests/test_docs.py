"""The docs match the tool: every command in the READMEs' code blocks is run against a sample or checked.

README.md, DEVELOPERS.md and samples/*/README.md: `dynmigrate` commands run in a scratch directory
(ROOT `/` or a scratch root becomes the debian-web sample); `migrate.sh --confirm` lines must confirm
exactly the manual steps of the plan the docs made; other commands are checked for the files and
options they name. A command of a kind this test does not know fails it: new docs get a check.
Sample READMEs' "Expected verdicts" tables are compared with the scan.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import REPO, scan_sample
from dynmigrate.cli.main import main
from dynmigrate.cli.manpage import render_manpage

DOCS = [REPO / "README.md", REPO / "DEVELOPERS.md", *sorted((REPO / "samples").glob("*/README.md"))]
SAMPLE = "samples/debian-web/root"
OWNERSHIP = "samples/debian-web/ownership.tsv"
SCRATCH_ROOTS = ("/", "/var/tmp/try")  # roots the docs use for a live or booted host
# programs the docs show that only make sense on a host or in a container: checked for shape only
HOST_ONLY = {
    "source",
    "apt-get",
    "apt",
    "debootstrap",
    "mkdir",
    "cp",
    "systemd-nspawn",
    "less",
    "redis-cli",
    "systemctl",
}
INI = re.compile(r"^(\[[\w-]+\]|[\w.@-]+ = .*)$")
pytestmark = pytest.mark.usefixtures("shared_scans")  # each sample is scanned once here (conftest)


@dataclass(frozen=True)
class Line:
    doc: Path
    number: int
    text: str

    def __str__(self) -> str:
        return f"{self.doc.relative_to(REPO)}:{self.number}: {self.text}"


def code_lines(doc: Path) -> list[Line]:
    """Lines of fenced and indented code blocks, with `\\` continuations joined (```text blocks,
    which show output, left out)."""
    out: list[Line] = []
    lines = doc.read_text(encoding="utf-8").split("\n")
    fenced = indented = output = False
    pending: Line | None = None
    for n, raw in enumerate(lines, 1):
        if raw.startswith("```"):
            fenced = not fenced
            output = fenced and raw.strip() == "```text"  # a program's output, not commands
            continue
        if output:
            continue
        is_code = fenced or (raw.startswith("    ") and (indented or n < 2 or not lines[n - 2].strip()))
        indented = bool(raw.startswith("    ") and is_code and not fenced) or (indented and not raw.strip())
        if not is_code:
            continue
        text = raw.strip()
        if pending is not None:
            text = pending.text + " " + text
            start = pending.number
            pending = None
        else:
            start = n
        if text.endswith("\\"):
            pending = Line(doc, start, text[:-1].rstrip())
            continue
        if text:
            out.append(Line(doc, start, text))
    return out


def simple_commands(text: str) -> list[list[str]]:
    """Split a shell line into simple commands (on &&, ;, |, &), comments dropped."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    out: list[list[str]] = [[]]
    for tok in lexer:
        if tok in ("&&", ";", "|", "||", "&"):
            out.append([])
        else:
            out[-1].append(tok)
    return [c for c in out if c]


def strip_prefix(argv: list[str]) -> list[str]:
    while argv and (argv[0] == "sudo" or re.match(r"^[A-Z_][A-Z0-9_]*=", argv[0])):
        argv = argv[1:]
    if argv and argv[0] == "nsenter":
        argv = argv[argv.index("-a") + 1 :]
    return argv


class Runner:
    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.plans: dict[str, Path] = {}  # a plan folder's last path component -> its folder here

    def dynmigrate(self, line: Line, argv: list[str]) -> None:
        args = list(argv[1:])
        command = args[0]
        if command == "rehearse":
            # boots a copy of the root (root only, minutes): the e2e tests run it; here its
            # options must parse exactly as written
            cmd = main.commands["rehearse"]
            parent = main.make_context("dynmigrate", ["rehearse"], resilient_parsing=True)  # the group's -h
            with cmd.make_context("rehearse", args[1:], parent=parent) as ctx:
                assert ctx.params["root"], line
            return
        if command != "rules" and len(args) > 1 and args[1] in SCRATCH_ROOTS:
            args[1] = SAMPLE
            if command != "verify" and "--ownership" not in args:
                args[2:2] = ["--ownership", OWNERSHIP]
        if command == "verify" and not [a for a in args[1:] if not a.startswith("-")]:
            args.insert(1, SAMPLE)  # the live root: the sample has no migration records
        for opt in ("-o", "--write-baseline", "--baseline"):
            if opt in args:
                i = args.index(opt) + 1
                args[i] = str(self.scratch / Path(args[i]).name)
        result = CliRunner().invoke(main, [*args, "--no-progress"] if command in ("scan", "plan") else args)
        if command == "verify":
            assert result.exit_code == 3, f"{line}\n{result.stderr}"
            assert "no migrated accounts recorded" in result.stderr, line
            return
        assert result.exit_code == 0, f"{line}\nexit {result.exit_code}: {result.stderr}"
        if command == "plan" and "-o" in args:
            folder = Path(args[args.index("-o") + 1])
            self.plans[folder.name] = folder

    def script(self, line: Line, argv: list[str]) -> None:
        folder = Path(argv[0]).parent.name
        assert folder in self.plans, f"{line}: no `dynmigrate plan ... -o .../{folder}` before it in the docs"
        plan = json.loads((self.plans[folder] / "plan.json").read_text(encoding="utf-8"))
        stage = argv[-1]
        assert stage in ("stage0", "stage1", "stage2", "stage3"), line
        options = [a for i, a in enumerate(argv[1:-1], 1) if argv[i - 1] not in ("--confirm", "--account")]
        known = ("--dry-run", "--confirm", "--account", "--confirm=", "--account=")
        assert all(a in known or a.startswith(known[3:]) for a in options), f"{line}: unknown option"
        confirmed = {argv[i + 1] for i, a in enumerate(argv) if a == "--confirm"}
        confirmed |= {a.split("=", 1)[1] for a in argv if a.startswith("--confirm=")}
        steps = {i for a in plan["accounts"] for i in a["confirm"]}
        if stage == "stage2":
            assert confirmed == steps, f"{line}: stage 2 needs --confirm for exactly {sorted(steps)}"
        else:
            assert not confirmed, f"{line}: only stage 2 takes --confirm"
        assert Path(self.plans[folder] / Path(argv[0]).name).is_file(), line

    def tool(self, line: Line, argv: list[str]) -> None:
        """ruff, mypy, lint-imports, pytest, python: every path they name exists, every pytest option is known."""
        for a in argv[1:]:
            if a.startswith("-") or ("/" not in a and not (REPO / a).exists()):
                continue
            if a.startswith("'") or "=" in a:
                continue
            assert (REPO / a).exists(), f"{line}: {a} does not exist"
        name = Path(argv[0]).name
        if name == "pytest":
            options = [a for a in argv[1:] if a.startswith("--")]
            assert set(options) <= {"--update-goldens"}, line
            if "-m" in argv:
                assert argv[argv.index("-m") + 1] == "not e2e", line
        if name == "python" and "-m" in argv:
            module = argv[argv.index("-m") + 1]
            assert (REPO / "src" / Path(*module.split("."))).with_suffix(".py").is_file(), line


def run_doc(doc: Path, scratch: Path) -> int:
    runner = Runner(scratch)
    ran = 0
    for line in code_lines(doc):
        if INI.match(line.text) or re.match(r"^[A-Z_]+=\$\(", line.text):
            continue  # INI examples; shell variables taken from a running container
        completion = re.search(r"_DYNMIGRATE_COMPLETE=(\w+) dynmigrate\b", line.text)
        if completion:
            env = {"_DYNMIGRATE_COMPLETE": completion.group(1)}
            result = CliRunner().invoke(main, [], env=env, prog_name="dynmigrate")
            assert result.exit_code == 0, line
            assert "_DYNMIGRATE_COMPLETE" in result.stdout, line
            ran += 1
            continue
        for argv in simple_commands(line.text):
            argv = strip_prefix(argv)
            if not argv:
                continue
            name = Path(argv[0]).name
            if name == "dynmigrate":
                runner.dynmigrate(line, argv)
            elif name in ("migrate.sh", "rollback.sh"):
                runner.script(line, argv)
            elif name in ("pytest", "ruff", "mypy", "python", "lint-imports"):
                runner.tool(line, argv)
            elif argv[0] == ".ci/run":
                assert os.access(REPO / ".ci/run", os.X_OK), line
            elif name in ("python3", "pip") or argv[:2] == [".venv/bin/pip", "install"]:
                assert argv[1:3] in (["-m", "venv"], ["install", "-e"]), line
            elif name in HOST_ONLY or name == "pgrep":
                continue
            else:
                pytest.fail(f"{line}: the docs test does not know how to check {argv[0]}")
            ran += 1
    return ran


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_doc_commands_work(doc: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "samples").symlink_to(REPO / "samples")
    monkeypatch.chdir(tmp_path)
    ran = run_doc(doc, tmp_path)
    if doc.parent == REPO:
        assert ran >= 10
    # nothing was written into the samples
    assert not (REPO / SAMPLE / "root").exists()


def test_checking_the_docs_leaves_the_commands_as_they_were(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """click builds a command's help option once, from the first context it sees: parsing a documented
    `rehearse` line outside the group must not leave it without `-h` (the man page test then failed
    whenever this file ran first)."""
    monkeypatch.setattr(main.commands["rehearse"], "_help_option", None)
    (tmp_path / "samples").symlink_to(REPO / "samples")
    monkeypatch.chdir(tmp_path)
    run_doc(REPO / "README.md", tmp_path)
    assert render_manpage() == (REPO / "man" / "dynmigrate.1").read_text(encoding="utf-8")


def test_readme_test_command_needs_no_sudo() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "sudo .ci/run" not in readme
    assert "\n       .ci/run\n" in readme


def expected_verdicts(doc: Path) -> tuple[dict[str, str], dict[str, str]]:
    """The sample README's table of expected verdicts, and the accounts it says the scanner disagrees on."""
    text = doc.read_text(encoding="utf-8")
    table: dict[str, str] = {}
    for m in re.finditer(r"^\| `([^`]+)`(?: \(\d+\))? \|[^|]*\| \*\*([a-z-]+)\*\*[^|]*\|", text, re.M):
        table[m.group(1)] = m.group(2)
    disagrees: dict[str, str] = {}
    section = text.split("## Where the scanner disagrees", 1)
    if len(section) == 2:
        body = section[1].split("\n## ", 1)[0]
        for m in re.finditer(r"^- `([^`]+)` comes out \*\*([a-z-]+)\*\*", body, re.M):
            disagrees[m.group(1)] = m.group(2)
    return table, disagrees


@pytest.mark.parametrize("doc", sorted((REPO / "samples").glob("*/README.md")), ids=lambda p: p.parent.name)
def test_sample_readme_verdicts_match_the_scan(doc: Path, in_repo: Path) -> None:
    name = doc.parent.name
    table, disagrees = expected_verdicts(doc)
    assert table, f"{doc}: no table of expected verdicts"
    report = scan_sample(name).report
    actual = {a.name: a.verdict.value for a in report.accounts}
    for account, verdict in disagrees.items():
        assert actual[account] == verdict, f"{doc}: says {account} comes out {verdict}; the scan says {actual[account]}"
        assert table.get(account) != verdict, f"{doc}: {account} is listed as a disagreement but the scan agrees"
    for account, verdict in table.items():
        if account in disagrees:
            continue
        assert actual.get(account) == verdict, (
            f"{doc}: expects {account} {verdict}; the scan says {actual.get(account)}"
        )


@pytest.mark.parametrize("plan", sorted(p.parent for p in (REPO / "tests/goldens/samples").glob("*/*/plan.json")))
def test_ansible_readme_is_written_from_its_plan(plan: Path) -> None:
    data = json.loads((plan / "plan.json").read_text(encoding="utf-8"))
    readme = (plan / "ansible" / "README.md").read_text(encoding="utf-8")
    accounts = [a["account"] for a in data["accounts"]]
    if not accounts:
        assert "This plan migrates no account" in readme
        assert "dynmigrate_stage" not in readme
        return
    command = next(line for line in code_lines(plan / "ansible" / "README.md") if "dynmigrate plan" in line.text)
    argv = simple_commands(command.text)[0]
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--account"] == accounts
    confirm = next(
        line.text for line in code_lines(plan / "ansible" / "README.md") if "dynmigrate_confirm" in line.text
    )
    extra = json.loads(shlex.split(confirm)[-1])
    assert extra == {"dynmigrate_confirm": [i for a in data["accounts"] for i in a["confirm"]]}
