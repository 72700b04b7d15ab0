"""Untrusted text is inert on a terminal: ESC, other C0/C1 controls, bidi overrides and zero-width
characters from the scanned root reach no human output raw; they show escaped. Names with them are
refused where systemd itself would refuse them."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from dynmigrate.cli.main import main
from robustness_stats import count
from treebuilder import build

# C0 controls but newline and tab, DEL, C1 controls, bidi embeddings/overrides/isolates and marks,
# zero-width characters, line and paragraph separators
DANGEROUS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
ESC = "\x1b"
TRICKS = f"{ESC}]0;pwned\x07 {ESC}[2J\x9b31m \u202egnp.exe\u200b\u2066x\u2069"


def hostile_root(tmp_path: Path) -> tuple[Path, Path]:
    root = build(
        tmp_path / "root",
        {
            "etc/passwd": (
                "root:x:0:0:root:/root:/bin/bash\n"
                f"foo:x:120:120:Foo {TRICKS}:/var/lib/foo:/usr/sbin/nologin\n"
                f"ba{ESC}[8md:x:121:121::/var/lib/bad:/usr/sbin/nologin\n"
            ),
            "etc/group": f"root:x:0:\nfoo:x:120:\nba{ESC}[8md:x:121:\n",
            "etc/systemd/system/foo.service": (
                f"[Unit]\nDescription=Foo {TRICKS}\n"
                f"[Service]\nUser=foo\nEnvironment=NOTE={TRICKS.replace(' ', '_')}\n"
                f"ExecStart=/usr/bin/foo --label {TRICKS.replace(' ', '_')}\nStateDirectory=foo\n"
            ),
            f"etc/systemd/system/bad{ESC}[8m.service": f"[Service]\nUser=ba{ESC}[8md\nExecStart=/usr/bin/bad\n",
            "var/lib/foo/data": "x",
        },
    )
    manifest = tmp_path / "ownership.tsv"
    manifest.write_text("/var/lib/foo\t120\t120\t0750\n/var/lib/foo/data\t120\t120\t0640\n")
    return root, manifest


def assert_inert(text: str, where: str) -> None:
    found = sorted({f"U+{ord(c):04X}" for c in DANGEROUS.findall(text)})
    assert found == [], f"raw {', '.join(found)} in {where}"
    count("hostile:terminal-inert")


def test_untrusted_text_is_escaped_in_every_human_output(tmp_path: Path) -> None:
    root, manifest = hostile_root(tmp_path)
    common = [str(root), "--ownership", str(manifest), "--no-progress"]
    runner = CliRunner()
    for fmt in ("table", "markdown"):
        res = runner.invoke(main, ["scan", *common, "--all", "--format", fmt])
        assert res.exit_code == 0, res.stderr
        assert_inert(res.stdout + res.stderr, f"scan-{fmt}")
    for what in ("foo", "foo.service"):
        res = runner.invoke(main, ["explain", *common, what])
        assert res.exit_code == 0, res.stderr
        assert_inert(res.stdout + res.stderr, f"explain-{what}")
    assert "--label \\x1b]0;pwned\\x07_\\x1b[2J\\x9b31m_\\u202egnp.exe" in res.stdout  # shown, escaped
    out = tmp_path / "plan"
    res = runner.invoke(main, ["plan", *common, "--account", "foo", "-o", str(out), "--no-security"])
    assert res.exit_code == 0, res.stderr
    assert_inert(res.stdout + res.stderr, "plan-messages")
    for name in ("REPORT.md", "migrate.sh", "rollback.sh", "lib/dynmigrate.sh", "userdel-plan.txt"):
        assert_inert((out / name).read_text(), name)
    unit = out / "units" / "foo.service"
    for name in ("effective.before.service", "effective.after.service", "effective.diff"):
        text = (unit / name).read_text()
        assert_inert(text, name)
        assert (
            name == "effective.diff"
            or "Description=Foo \\x1b]0;pwned\\x07 \\x1b[2J\\x9b31m \\u202egnp.exe\\u200b\\u2066x\\u2069" in text
        )


def test_names_systemd_refuses_are_refused(tmp_path: Path) -> None:
    """systemd refuses user names with control characters (valid_user_group_name): so does the
    passwd reader, with a finding, and plan cannot select such an account."""
    root, manifest = hostile_root(tmp_path)
    common = [str(root), "--ownership", str(manifest), "--no-progress"]
    res = CliRunner().invoke(main, ["scan", *common, "--all", "--format", "markdown"])
    assert_inert(res.stdout, "scan-markdown")
    assert "invalid user name 'ba\\\\x1b[8md'" in res.stdout
    res = CliRunner().invoke(
        main, ["plan", *common, "--no-security", "--account", f"ba{ESC}[8md", "-o", str(tmp_path / "plan")]
    )
    assert res.exit_code == 2
    assert_inert(res.stdout + res.stderr, "plan-messages")
    assert res.stderr == "dynmigrate: no static system account named ba\\x1b[8md\n"
