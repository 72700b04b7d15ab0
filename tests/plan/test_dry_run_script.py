"""`migrate.sh --dry-run STAGE` / `rollback.sh --dry-run STAGE`: every command that changes the host
goes through `run`, `run_to` or `run_append` (lib.sh), which print it instead of running it in a dry
run. This test keeps it so: a command that changes the host, or an output redirection into a file,
anywhere in lib.sh or stages.sh outside those wrappers fails it, naming the function and the line.
tests/e2e/test_dry_run.py shows in a booted root that a dry run of every stage changes nothing."""

from __future__ import annotations

import os
import re
import subprocess
from importlib import resources
from pathlib import Path

import pytest

from conftest import GOLDENS, Golden, plan_sample
from plan.scriptlib import ROOT_PATH, Sandbox, need_root, q

# commands that change files, accounts, packages or units (systemctl and dpkg-statoverride only
# with the subcommands below; sed only with -i)
MUTATING = {
    "apt-get",
    "chage",
    "chgrp",
    "chmod",
    "chown",
    "cp",
    "dpkg",
    "groupadd",
    "groupdel",
    "install",
    "ln",
    "mkdir",
    "mv",
    "nscd",
    "rm",
    "rmdir",
    "systemd-tmpfiles",
    "touch",
    "useradd",
    "userdel",
    "usermod",
}
SYSTEMCTL_MUTATING = {
    "start",
    "stop",
    "restart",
    "reload",
    "daemon-reload",
    "reset-failed",
    "enable",
    "disable",
    "mask",
}
WRAPPERS = {"run", "run_to", "run_append", "check_after", "dry_print"}
# functions that act only through the wrappers' callers or are dry-run aware as a whole:
#   the wrappers; log (never writes its file in a dry run); set_attrs and its helpers (set_attrs
#   prints the records in a dry run); seal and write_manifest (only ever called through run);
#   check_data_intact (a check after the stage's changes, only through check_after; its temporary
#   list is in /tmp); dry_list and dry_forget (a dry run's own temporary file in /tmp)
EXEMPT = {
    "dry_list",
    "dry_forget",
    "run",
    "run_to",
    "run_append",
    "check_after",
    "dry_print",
    "log",
    "set_attrs_sh",
    "seal",
    "write_manifest",
    "check_data_intact",
}
THROUGH_RUN = {"seal": "run", "write_manifest": "run", "check_data_intact": "check_after"}
SEPARATORS = re.compile(r";|&&|\|\||\||\$\(|\(|\{|\bthen\b|\bdo\b|\belse\b|!|\bif\b|\bwhile\b|\belif\b|\btime\b")
REDIRECT = re.compile(r"(?<![<>&0-9-])>{1,2}\s*(\"?\$|/)(?!dev/null)")


def functions(text: str) -> dict[str, list[tuple[int, str]]]:
    """Function name -> its body's lines (line number, text); the embedded helper programs
    (SET_ATTRS_PY, SET_ATTR_FD: run by set_attrs) are not functions and are left out."""
    out: dict[str, list[tuple[int, str]]] = {}
    current = None
    for no, line in enumerate(text.splitlines(), 1):
        m = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)\(\) \{$", line)
        if m:
            current = m.group(1)
            out[current] = []
        elif line == "}":
            current = None
        elif current is not None:
            out[current].append((no, line))
    return out


def commands(line: str) -> list[list[str]]:
    """The simple commands of one line, each as its words (quoted text blanked, assignments dropped)."""
    code = line.split(" #", 1)[0] if not line.lstrip().startswith("#") else ""
    code = re.sub(r"'[^']*'", "''", code)
    out = []
    for part in SEPARATORS.split(code):
        words = [w for w in part.split() if w not in ("\\",)]
        while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
            words = words[1:]
        if words:
            out.append(words)
    return out


def violations(name: str, text: str) -> list[str]:
    out = []
    funcs = functions(text)
    for func, body in funcs.items():
        if func in EXEMPT:
            continue
        for no, line in body:
            for words in commands(line):
                cmd = words[0]
                if cmd in WRAPPERS or cmd in ("local", "echo", "printf", "log", "die"):
                    continue
                bad = (
                    cmd in MUTATING
                    or (cmd == "systemctl" and any(w in SYSTEMCTL_MUTATING for w in words[1:]))
                    or (cmd == "dpkg-statoverride" and any(w in ("--add", "--remove") for w in words[1:]))
                    or (cmd == "sed" and "-i" in words[1:])
                    or (cmd == "env" and len(words) > 1)
                )
                if bad:
                    out.append(f"{name}:{no} in {func}(): {line.strip()}")
            code = re.sub(r"'[^']*'", "''", line.split(" #", 1)[0])
            if REDIRECT.search(code) and not re.match(r"\s*(run|run_to|run_append|check_after)\b", line):
                out.append(f"{name}:{no} in {func}(): writes a file: {line.strip()}")
    for func, wrapper in THROUGH_RUN.items():
        for other, body in funcs.items():
            for no, line in body:
                for words in commands(line):
                    if func in words[:1]:
                        out.append(f"{name}:{no} in {other}(): {func} called without {wrapper}")
                    elif func in words[1:2] and words[0] != wrapper:
                        out.append(f"{name}:{no} in {other}(): {func} called through {words[0]}, not {wrapper}")
    return out


@pytest.mark.parametrize("name", ["lib.sh", "stages.sh"])
def test_every_change_to_the_host_goes_through_the_dry_run_wrappers(name: str) -> None:
    text = resources.files("dynmigrate.render.planfolder").joinpath(name).read_text(encoding="utf-8")
    assert violations(name, text) == []


def test_the_check_finds_a_change_outside_the_wrappers() -> None:
    text = (
        "f() {\n"
        "\tlocal d\n"
        "\trun chown 0 /x\n"
        "\tif [ -e /x ]; then chmod 0644 -- /x; fi\n"
        '\tsystemctl show -p X -- "$u"\n'
        '\tsystemctl restart -- "$u" || true\n'
        "\tdpkg-statoverride --add root root 755 /x\n"
        "\tsed -e s/a/b/ /x\n"
        "\tsed -i s/a/b/ /x\n"
        '\tprintf x >"$STATE/f"\n'
        "\tprintf x 2>/dev/null\n"
        "\tseal /d m f\n"
        "\trun_to /d/f true\n"
        "}\n"
    )
    assert violations("t.sh", text) == [
        "t.sh:4 in f(): if [ -e /x ]; then chmod 0644 -- /x; fi",
        't.sh:6 in f(): systemctl restart -- "$u" || true',
        "t.sh:7 in f(): dpkg-statoverride --add root root 755 /x",
        "t.sh:9 in f(): sed -i s/a/b/ /x",
        't.sh:10 in f(): writes a file: printf x >"$STATE/f"',
        "t.sh:12 in f(): seal called without run",
    ]


# ---- the printed commands of every stage for a sample plan (golden) ------------------------------

# The host's reads that differ from machine to machine are replaced: the account as the sample has
# it (redis, UID 103, GID 105; gone once the DELETED file exists), no process of it, no nss-systemd
# yet, and the leftover search limited to one folder of the test. systemctl prints the unit as the
# plan saw it; every command that would change the host is a stub that fails (Sandbox), so a dry run
# that ran one would show in dangerous_calls().
HOST = """
passwd_field() {{
	if [ "$2" = redis ] && [ ! -e {deleted} ]; then
		case "$1" in
		/etc/passwd) echo "redis:x:103:105::/var/lib/redis:/usr/sbin/nologin" | cut -d: -f"$3" ;;
		/etc/group) echo "redis:x:105:" | cut -d: -f"$3" ;;
		esac
	fi
}}
account_uid() {{ passwd_field /etc/passwd "$1" 3; }}
procs_of_uid() {{ :; }}
nss_line_has_systemd() {{ return 0; }}
nss_lib_present() {{ return 1; }}
leftover_roots() {{ printf '%s\\0' {srv}; }}
"""


def test_printed_commands_of_every_stage_for_a_sample_plan(tmp_path: Path, in_repo: Path, golden: Golden) -> None:
    need_root()
    plan = tmp_path / "plan"
    res = plan_sample("debian-web", ["redis"], plan, "--no-security")
    assert res.exit_code == 0, res.stderr
    sb = Sandbox(tmp_path)
    sb.stub(
        "systemctl",
        f"""case "$1" in
cat) cat {q(plan)}/units/"$3"/effective.before.service ;;
--version) echo 'systemd 252 (252.39-1~deb12u2)' ;;
is-enabled) echo enabled ;;
show) echo "" ;;
list-units) ;;
is-active) echo inactive; exit 3 ;;
*) echo "systemctl $*" >>{q(sb.calls)}; exit 97 ;;
esac
""",
    )
    sb.stub("dpkg-query", "exit 1\n")
    sb.stub("getent", "exit 2\n")
    sb.stub(
        "dpkg-statoverride",
        f"""if [ "$1" = --list ] && [ $# = 1 ]; then echo 'redis redis 640 /etc/redis/redis.conf'; exit 0; fi
if [ "$1" = --list ]; then exit 1; fi
echo "dpkg-statoverride $*" >>{q(sb.calls)}; exit 97
""",
    )
    srv = tmp_path / "srv"
    srv.mkdir()
    (srv / "left.txt").write_text("x\n", encoding="utf-8")
    os.chown(srv / "left.txt", 103, 105)
    deleted = tmp_path / "deleted"
    head = (
        f"STATE={q(sb.state)} PLAN_DIR={q(plan)} SCRIPT_NAME=migrate.sh STAGE='' A_NAME='' PLAN_ID=sample\n"
        "declare -A CONFIRMED=([DM110-redis]=1 [DM208-redis]=1)\n"
        f"START_TIMEOUT=1 SETTLE=0 PROBE_TIMEOUT=1\nsource {q(plan)}/lib/dynmigrate.sh\n"
        + HOST.format(deleted=q(deleted), srv=q(srv))
        + 'load_account redis\nmkdir -p -- "$(acct_dir)"\nexec 8>&1\nDRY_FD=8\n'
    )

    def stage(body: str) -> str:
        res = subprocess.run(
            ["bash", "-c", "set -euo pipefail\nshopt -s nullglob\numask 077\n" + head + body],
            capture_output=True,
            text=True,
            env={**os.environ, "PATH": f"{sb.bin}:{ROOT_PATH}", "LC_ALL": "C"},
            timeout=300,
            check=False,
        )
        assert res.returncode == 0, res.stderr
        return res.stdout

    gone = f': >{q(deleted)}; seal "$(acct_dir)" stage2-backup.done passwd; mark_done 2'
    shown = []
    for name, dry, then in (
        ("migrate.sh stage0", "run_stage0", "backup_account; mark_done 0"),
        ("migrate.sh stage1", "run_stage1", "mark_done 1"),
        ("rollback.sh stage1", "undo_stage1", ""),
        ("migrate.sh stage2", "run_stage2", gone),
        ("migrate.sh stage3", "run_stage3", ""),
    ):
        printed = stage(f"STAGE={name.split()[1]}\nDRY_RUN=1\n{dry}\n")
        if then:
            assert stage(then + "\n") == ""
        shown.append(f"## {name}\n{printed}")
    assert sb.dangerous_calls() == []
    text = "\n".join(shown)
    text = text.replace(str(sb.state), "$STATE").replace(str(plan), "$PLAN_DIR").replace(str(tmp_path), "$TMP")
    text = re.sub(r"inode=\d+:\d+", "inode=DEV:INO", text)
    text = re.sub(r"\d{4}-\d\d-\d\d", "YYYY-MM-DD", text)
    golden.check(GOLDENS / "samples" / "debian-web" / "migrate-dry-run.txt", text)
