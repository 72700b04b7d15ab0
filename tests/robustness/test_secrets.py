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
    # /etc/foo (0750) kept other users out: the whole directory is one credential, bound back over it
    dropin = (out / "units" / "foo.service" / "50-dynmigrate.conf").read_text()
    assert "LoadCredential=foo:/etc/foo\nBindReadOnlyPaths=%d:/etc/foo\n" in dropin
    assert "| `/etc/foo/api.key` | 120:120 0600 | 0:0 0600 | stage 2 |" in report
    assert "| `/etc/foo/agent.psk` | 120:120 0600 | 0:0 0600 | stage 2 |" in report
