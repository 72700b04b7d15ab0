"""Secrets planted in a root never reach any output: table, json, markdown, sarif, explain, graph,
plan folder, or the messages on stderr."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from dynmigrate.cli.main import main
from robustness_stats import count
from treebuilder import build

MARKERS = ("HASHMARKER", "SALTMARK", "KEYMARKER", "PWMARKER", "TOKMARKER", "PSKMARKER")


def secret_root(tmp_path: Path) -> tuple[Path, Path]:
    root = build(
        tmp_path / "root",
        {
            "etc/passwd": ("root:x:0:0:root:/root:/bin/bash\nfoo:x:120:120:Foo:/var/lib/foo:/bin/sh\n"),
            "etc/group": "root:x:0:\nfoo:x:120:\n",
            "etc/shadow": (
                "root:$6$SALTMARK$HASHMARKERroot:19000:0:99999:7:::\nfoo:$y$j9T$SALTMARK$HASHMARKERfoo:19000::::::\n"
            ),
            "etc/gshadow": "foo:$6$SALTMARK$HASHMARKERgrp::\n",
            "etc/foo/api.key": "-----BEGIN PRIVATE KEY-----\nKEYMARKER\n-----END PRIVATE KEY-----\n",
            "etc/foo/foo.conf": "listen = 127.0.0.1\npassword = PWMARKER-77\n",
            "etc/foo/agent.psk": "PSKMARKER0123456789abcdef\n",
            "etc/default/foo": "TOKEN=TOKMARKER\n",
            "etc/systemd/system/foo.service": (
                "[Service]\nUser=foo\nEnvironmentFile=/etc/default/foo\nExecStart=/usr/bin/foo -c /etc/foo/foo.conf\n"
            ),
            "var/lib/foo/data": "x",
        },
    )
    manifest = tmp_path / "ownership.tsv"
    manifest.write_text(
        "/etc/foo\t120\t120\t0750\n/etc/foo/api.key\t120\t120\t0600\n/etc/foo/foo.conf\t120\t120\t0640\n"
        "/etc/foo/agent.psk\t120\t120\t0600\n/var/lib/foo\t120\t120\t0750\n/var/lib/foo/data\t120\t120\t0640\n"
    )
    return root, manifest


def assert_clean(text: str, where: str) -> None:
    for marker in MARKERS:
        assert marker not in text, f"{marker} leaked into {where}"
    count("hostile:no-secret-in-any-output")
    del where


def test_no_output_carries_a_secret(tmp_path: Path) -> None:
    root, manifest = secret_root(tmp_path)
    common = [str(root), "--ownership", str(manifest), "--no-progress"]
    runner = CliRunner()
    for fmt in ("table", "json", "markdown", "sarif"):
        res = runner.invoke(main, ["scan", *common, "--format", fmt])
        assert res.exit_code == 0, res.stderr
        assert_clean(res.stdout + res.stderr, f"scan-{fmt}")
    for fmt in ("text", "json"):
        res = runner.invoke(main, ["explain", *common, "foo", "--format", fmt])
        assert res.exit_code == 0, res.stderr
        assert "DM303" in res.stdout  # the secrets were seen ...
        assert_clean(res.stdout + res.stderr, f"explain-{fmt}")  # ... and not shown
    for fmt in ("json", "dot"):
        res = runner.invoke(main, ["graph", *common, "--format", fmt])
        assert res.exit_code == 0
        assert_clean(res.stdout + res.stderr, f"graph-{fmt}")
    out = tmp_path / "plan"
    res = runner.invoke(main, ["plan", *common, "--account", "foo", "-o", str(out), "--no-security"])
    assert res.exit_code == 0, res.stderr
    assert_clean(res.stdout + res.stderr, "plan-messages")
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) > 10
    for p in files:
        assert_clean(p.read_text(errors="surrogateescape"), f"plan-{p.relative_to(out)}".replace("/", "-"))
    report = (out / "REPORT.md").read_text()
    # /etc/foo (0750) kept other users out: the unit sees a read-only tmpfs there, each file bound in
    dropin = (out / "units" / "foo.service" / "50-dynmigrate.conf").read_text()
    assert (
        "TemporaryFileSystem=/etc/foo:ro\n"
        "LoadCredential=agent.psk:/etc/foo/agent.psk\nBindReadOnlyPaths=%d/agent.psk:/etc/foo/agent.psk\n"
        "LoadCredential=api.key:/etc/foo/api.key\nBindReadOnlyPaths=%d/api.key:/etc/foo/api.key\n"
        "LoadCredential=foo.conf:/etc/foo/foo.conf\nBindReadOnlyPaths=%d/foo.conf:/etc/foo/foo.conf\n"
    ) in dropin
    assert "| `/etc/foo/api.key` | 120:120 0600 | 0:0 0600 | stage 2 |" in report
    assert "| `/etc/foo/agent.psk` | 120:120 0600 | 0:0 0600 | stage 2 |" in report


VALUE_MARKERS = ("ENVMARK", "ARGMARK", "CRONMARK", "LRMARK")
# Files the scripts install must keep the real values (they replace the host's own files): the plan
# folder is 0700, and nothing else in it may carry them.
INSTALLED = ("files/foo/override-",)


def value_root(tmp_path: Path) -> tuple[Path, Path]:
    """Secrets as values in units, cron lines and logrotate scripts (not in files of their own)."""
    root = build(
        tmp_path / "root",
        {
            "etc/passwd": "root:x:0:0:root:/root:/bin/bash\nfoo:x:120:120:Foo:/var/lib/foo:/usr/sbin/nologin\n",
            "etc/group": "root:x:0:\nfoo:x:120:\n",
            "etc/systemd/system/foo.service": (
                "[Service]\nUser=foo\n"
                'Environment="DB_PASSWORD=ENVMARK1" LOG_LEVEL=info\n'
                "Environment=API_TOKEN=ENVMARK2 MY_SECRET=ENVMARK3 SSH_KEY=ENVMARK4 DB_PASS=ENVMARK5\n"
                "ExecStartPre=/bin/mkdir -p /run/foo\nExecStartPre=/bin/chown foo /run/foo\n"
                "ExecStart=/usr/bin/foo --password=ARGMARK1 --api-token ARGMARK2 -c /etc/foo/foo.conf\n"
            ),
            "etc/cron.d/foo": (
                "0 3 * * * foo /usr/bin/foo-backup --password=CRONMARK1 /var/lib/foo\n"
                "15 2 * * * foo PGPASSWORD=CRONMARK2 pg_dump ledger\n"
            ),
            "etc/logrotate.d/foo": (
                "/var/log/foo/*.log {\n\tdaily\n\tcreate 0640 foo foo\n\tpostrotate\n"
                "\t\t/usr/bin/foo-ctl --password=LRMARK1 reopen\n\tendscript\n}\n"
            ),
            "var/lib/foo/data": "x",
            "var/log/foo/foo.log": "x",
        },
    )
    manifest = tmp_path / "ownership.tsv"
    manifest.write_text(
        "/var/lib/foo\t120\t120\t0750\n/var/lib/foo/data\t120\t120\t0640\n"
        "/var/log/foo\t120\t120\t0750\n/var/log/foo/foo.log\t120\t120\t0640\n"
    )
    return root, manifest


def assert_masked(text: str, where: str) -> None:
    for marker in VALUE_MARKERS:
        assert marker not in text, f"{marker} leaked into {where}"
    count("hostile:secret-values-masked")


def test_secret_values_are_masked_in_every_output(tmp_path: Path) -> None:
    root, manifest = value_root(tmp_path)
    common = [str(root), "--ownership", str(manifest), "--no-progress"]
    runner = CliRunner()
    for fmt in ("table", "json", "markdown", "sarif"):
        res = runner.invoke(main, ["scan", *common, "--all", "--format", fmt])
        assert res.exit_code == 0, res.stderr
        assert_masked(res.stdout + res.stderr, f"scan-{fmt}")
    for what in ("foo", "foo.service"):
        for fmt in ("text", "json"):
            res = runner.invoke(main, ["explain", *common, what, "--format", fmt])
            assert res.exit_code == 0, res.stderr
            assert_masked(res.stdout + res.stderr, f"explain-{what}-{fmt}")
    for fmt in ("json", "dot"):
        res = runner.invoke(main, ["graph", *common, "--format", fmt])
        assert_masked(res.stdout + res.stderr, f"graph-{fmt}")
    out = tmp_path / "plan"
    res = runner.invoke(main, ["plan", *common, "--account", "foo", "-o", str(out), "--no-security"])
    assert res.exit_code == 0, res.stderr
    assert_masked(res.stdout + res.stderr, "plan-messages")
    installed = []
    for p in sorted(q for q in out.rglob("*") if q.is_file()):
        name = str(p.relative_to(out))
        if name.startswith(INSTALLED):
            installed.append(name)
            continue
        assert_masked(p.read_text(errors="surrogateescape"), name)
    assert installed  # the cron and logrotate copies exist, and keep what the host needs
    # the key and the place stay visible, only the value goes
    before = (out / "units" / "foo.service" / "effective.before.service").read_text()
    assert 'Environment="DB_PASSWORD=<masked>" LOG_LEVEL=info\n' in before
    assert "Environment=API_TOKEN=<masked> MY_SECRET=<masked> SSH_KEY=<masked> DB_PASS=<masked>\n" in before
    assert "ExecStart=/usr/bin/foo --password=<masked> --api-token <masked> -c /etc/foo/foo.conf\n" in before
    timers = "".join(p.read_text() for p in sorted((out / "suggested").glob("*.service")))
    assert "--password=<masked>" in timers
    assert "PGPASSWORD=<masked> pg_dump ledger" in timers
