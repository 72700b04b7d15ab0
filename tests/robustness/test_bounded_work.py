"""Bounded work on hostile input: every reader is linear in its input, with caps.

Each case feeds one reader a worst case for the way such readers go wrong (nested quantifiers
over whitespace, repeated string joining, function calls that fan out, variables that double)
and runs it in a forked child with a time bound. The bound is generous (a linear reader takes a
fraction of it even on a loaded machine) but a quadratic one needs minutes. After the hostile
text comes a well-formed line, and the child checks that the reader still found it: a cap that
drops the whole file would pass a time bound too.
"""

from __future__ import annotations

import functools
import multiprocessing
import shlex
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynmigrate.collect import references as R
from dynmigrate.collect.accounts import parse_passwd, read_accounts
from dynmigrate.collect.rootfs import RootFS
from dynmigrate.collect.secrethints import SECRET_LINE
from dynmigrate.collect.snapshot import parse_policy
from dynmigrate.collect.unitfile import parse_unit_text
from dynmigrate.model.common import RelPath
from dynmigrate.model.references import Target
from dynmigrate.model.shellwords import split_words
from robustness_stats import count
from treebuilder import build

BOUND = 5.0  # seconds of CPU; the quadratic versions took from 30 s to hours on these inputs
P = RelPath("/etc/x")
KNOWN = frozenset({"foo"})


def _daemon_config(text: str) -> None:
    refs = R.scan_daemon_config(text + "\nuser foo\n", P, KNOWN, "foo.service")
    assert [(r.name, r.location.line) for r in refs] == [("foo", text.count("\n") + 2)]


def _secret_lines(text: str) -> None:
    hits = [n for n, line in enumerate((text + "\npassword = hunter2").split("\n"), 1) if SECRET_LINE.match(line)]
    assert hits[-1:] == [text.count("\n") + 2]


def _maintainer(text: str) -> None:
    actions = R.scan_maintainer_script(text + "\nadduser --system foo\n", P)
    assert ("adduser", (("foo", Target.USER),)) in [(a.tool, a.names) for a in actions]


def _unit(text: str) -> None:
    unit, _problems = parse_unit_text("[Service]\n" + text + "\nUser=foo\n", P)
    assert [d.value for d in unit.directives if d.key == "User"] == ["foo"]


def _sudoers(text: str) -> None:
    refs, _ = R.parse_sudoers(text + "\nfoo ALL=(ALL) ALL\n", P, KNOWN)
    assert [r.name for r in refs] == ["foo"]


def _polkit(text: str) -> None:
    refs, _ = R.parse_polkit(text + '\nif (subject.user == "foo") return "yes";\n', P, KNOWN)
    assert [(r.name, r.location.line) for r in refs][-1:] == [("foo", text.count("\n") + 2)]


def _tmpfiles(text: str) -> None:
    refs, _ = R.parse_tmpfiles(text + "\nd /run/foo 0755 foo foo -\n", P)
    assert "foo" in {r.name for r in refs}


def _policy(text: str) -> None:
    _policy, problems = parse_policy(text, "policy.ini")
    assert [p.location.line for p in problems][:1] == [2], "the first line without a key is reported"


def _passwd(text: str) -> None:
    accounts, _ = parse_passwd(text + "foo:x:120:120::/:/bin/false\n", P)
    assert accounts[-1].name == "foo"


def worst_cases(scale: int = 1) -> dict[str, tuple[Callable[[str], None], str]]:
    """The worst cases; with SCALE > 1 the long ones are SCALE times shorter (same shape, same check)."""

    def n(size: int) -> int:
        return size // scale

    spaces = " " * 200_000
    return {
        # the daemon-config user pattern: \s*[=:\s]\s* and \s*;?\s*$ over a run of blanks
        "daemon-config: user + blanks": (_daemon_config, "user" + spaces + "!"),
        "daemon-config: user NAME + blanks": (_daemon_config, "user foo" + spaces + "!"),
        "daemon-config: group + blanks": (_daemon_config, "group" + spaces + "!"),
        "daemon-config: -u + blanks": (_daemon_config, "-u" + spaces + "!"),
        # the secret-line pattern: \s*(?:[=:]|\s)\s*\S over trailing blanks, and a key that repeats a keyword
        "secret line: keyword + blanks": (_secret_lines, "password" + spaces),
        "secret line: repeated keyword": (_secret_lines, "password" * 25_000 + " "),
        "secret line: blanks only": (_secret_lines, spaces),
        # the maintainer-script reader: command splitting over blanks, calls that fan out, doubling variables
        "maintainer script: blanks between words": (_maintainer, "a" + spaces + "b"),
        "maintainer script: assignment + blanks": (_maintainer, "A=" + spaces + "x" + spaces + "!"),
        "maintainer script: recursive calls": (_maintainer, "f() {\n" + "f\n" * 50 + "}\nf\n"),
        "maintainer script: doubling variable": (_maintainer, "A=xx\n" + "A=$A$A\n" * 64 + "echo $A\n"),
        "maintainer script: unterminated defaults": (_maintainer, "echo " + "${a:-" * 50_000),
        "maintainer script: continuation lines": (_maintainer, "echo \\\n" + "a \\\n" * n(300_000) + "b"),
        "maintainer script: loops without done": (_maintainer, "for x in a; do\n" * n(100_000)),
        "maintainer script: nested loops": (
            _maintainer,
            "for a in 0 1 2 3 4 5 6 7 8 9; do\n" * 8 + "adduser $a\n" + "done\n" * 8,
        ),
        "maintainer script: loop over many words": (
            _maintainer,
            "for x in " + "a " * n(200_000) + "; do echo $x; done",
        ),
        # continuation-line joining
        "unit file: continuation lines": (_unit, "ExecStart=/bin/true \\\n" + "a \\\n" * n(300_000) + "b"),
        "unit file: backslashes": (_unit, "X=" + "\\" * 400_000),
        "sudoers: continuation lines": (
            _sudoers,
            "Cmnd_Alias X = /bin/a, \\\n" + "/bin/a, \\\n" * n(300_000) + "/bin/b",
        ),
        # a string that never ends, and one opening parenthesis after another
        "polkit: unterminated string of escaped quotes": (_polkit, 'a = "' + '\\"' * 100_000),
        "polkit: many strings naming the account": (_polkit, 'isInGroup("x") ' + '"foo",' * n(100_000)),
        "sudoers: opening parentheses": (_sudoers, "bar ALL = " + "(" * 200_000),
        "tmpfiles: continuation lines": (_tmpfiles, "d /x \\\n" + "a \\\n" * n(300_000) + "b"),
        "policy: lines without a key": (_policy, "[never]\n" + "x\n" * 200_000),
        "passwd: blank fields": (_passwd, ":" * 400_000 + "\n"),
    }


CASES = worst_cases()
# The cases that take a tenth of a second or more of CPU at full length run in the slow tier
# (`pytest -m e2e`); the quick tier runs them ten times shorter (test_reader_survives_a_short_worst_case).
LONG = frozenset(
    {
        "maintainer script: continuation lines",
        "maintainer script: loops without done",
        "maintainer script: loop over many words",
        "unit file: continuation lines",
        "sudoers: continuation lines",
        "polkit: many strings naming the account",
        "tmpfiles: continuation lines",
    }
)
SHORT = {name: case for name, case in worst_cases(10).items() if name in LONG}


def _child(check: Callable[[str], None], text: str, conn: Connection) -> None:
    try:
        # CPU time, not wall time: a loaded machine stretches the latter, never the work done
        start = time.process_time()
        check(text)
        conn.send(("ok", time.process_time() - start))
    except BaseException:
        conn.send(("error", traceback.format_exc()))


def _bounded(name: str, check: Callable[[str], None], text: str, bound: float = BOUND) -> None:
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(check, text, child))
    proc.start()
    child.close()
    ready = parent.poll(bound * 12)  # the child measures itself; this only stops a runaway one
    if not ready:
        proc.kill()
        proc.join()
        pytest.fail(f"{name}: still running after {bound * 12:.0f} s (input {len(text)} characters)")
    status, detail = parent.recv()
    proc.join()
    assert status == "ok", detail
    assert detail < bound, f"{name}: {detail:.1f} s of CPU for {len(text)} characters"


@pytest.mark.parametrize("name", [pytest.param(n, marks=[pytest.mark.e2e] if n in LONG else []) for n in sorted(CASES)])
def test_reader_is_linear_on_worst_case(name: str) -> None:
    check, text = CASES[name]
    _bounded(name, check, text)
    count(f"hostile:bounded work: {name}")


@pytest.mark.parametrize("name", sorted(SHORT))
def test_reader_survives_a_short_worst_case(name: str) -> None:
    """The quick tier's version of a long worst case: the same shape, a tenth of the length; the
    reader still finds the valid line after it, in bounded time (uncounted: the full case counts)."""
    check, text = SHORT[name]
    assert len(text) < len(CASES[name][1]) / 5
    _bounded(name, check, text)


SHELL_BITS = st.sampled_from(["a", "b=", " ", "\t", "\n", "\r", "'", '"', "\\", "$", "#", "é"])


SHELL_LINES = st.lists(SHELL_BITS, max_size=16).map("".join)


def _same_words_as_shlex(text: str) -> None:
    try:
        expected: list[str] | None = shlex.split(text)
    except ValueError:
        expected = None
    try:
        actual: list[str] | None = split_words(text)
    except ValueError:
        actual = None
    assert actual == expected


@pytest.mark.e2e  # the slow tier: 2,000 examples; the quick tier runs 200 (below)
@settings(max_examples=2000, deadline=None)
@given(SHELL_LINES)
def test_split_words_gives_shlex_words(text: str) -> None:
    """The linear splitter that replaced shlex.split gives the same words and fails on the same input."""
    _same_words_as_shlex(text)
    count("property:split_words")


@settings(max_examples=200, deadline=None)
@given(SHELL_LINES)
def test_split_words_gives_shlex_words_on_200_lines(text: str) -> None:
    """The quick tier's sample of the test above (uncounted: the 2,000 lines are the README's figure)."""
    _same_words_as_shlex(text)


def test_split_words_is_linear() -> None:
    start = time.process_time()
    words = split_words("a" * 1_000_000 + ' "' + "\\\\" * 100_000 + '" x')
    assert [len(w) for w in words] == [1_000_000, 100_000, 1]
    assert time.process_time() - start < BOUND


def _many_accounts(text: str, accounts: int) -> None:
    """Read ACCOUNTS accounts (or a tenth of them) and look each one up by name, UID, group and GID."""
    fs = RootFS(text)
    data, problems = read_accounts(fs)
    assert problems == []
    assert len(data.accounts) == len(data.groups) == accounts + 1
    for acc in data.accounts:
        assert data.account(acc.name) is acc
        assert data.account_by_uid(acc.uid) is acc
        grp = data.group_by_gid(acc.gid)
        assert grp is not None
        assert data.group(grp.name) is grp


ACCOUNTS = 70_000


def _account_files(tmp_path: Path, accounts: int) -> None:
    names = [f"svc{i}" for i in range(accounts)]
    build(
        tmp_path,
        {
            "etc/passwd": "root:x:0:0::/root:/bin/sh\n"
            + "".join(f"{n}:x:{100 + i}:{100 + i}::/nonexistent:/usr/sbin/nologin\n" for i, n in enumerate(names)),
            "etc/group": "root:x:0:\n" + "".join(f"{n}:x:{100 + i}:\n" for i, n in enumerate(names)),
        },
    )


@pytest.mark.e2e  # the slow tier; the quick tier reads a tenth of them (below)
def test_many_accounts_are_read_and_looked_up_in_linear_time(tmp_path: Path) -> None:
    _account_files(tmp_path, ACCOUNTS)
    # reading 70,000 lines takes seconds on a busy machine; one scan of all accounts per lookup took hours
    _bounded("70,000 accounts", functools.partial(_many_accounts, accounts=ACCOUNTS), str(tmp_path), bound=30.0)
    count("hostile:bounded work: 70,000 accounts")


def test_7000_accounts_are_read_and_looked_up(tmp_path: Path) -> None:
    """The quick tier's version: 7,000 accounts read and looked up in under 5 s of CPU (uncounted; the
    70,000 of the slow tier are what proves linear time)."""
    _account_files(tmp_path, ACCOUNTS // 10)
    _bounded("7,000 accounts", functools.partial(_many_accounts, accounts=ACCOUNTS // 10), str(tmp_path))
