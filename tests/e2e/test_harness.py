"""Smoke tests of the e2e harness: real daemons in a real booted Debian container (each suite)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from e2e import harness
from e2e.harness import (
    BootError,
    CommandError,
    Container,
    ContainerFactory,
    E2EUnavailable,
    RootSpec,
    fresh_copy,
    remove_tree,
)

LEAK_MARKER = "/var/lib/dm-e2e-leak-marker"


def passwd_uid(container: Container, user: str) -> int:
    for line in container.run(["cat", "/etc/passwd"]).stdout.splitlines():
        fields = line.split(":")
        if fields[0] == user:
            return int(fields[2])
    raise AssertionError(f"{user} not in the container's /etc/passwd")


def main_pid(container: Container, unit: str) -> int:
    pid = int(container.run(["systemctl", "show", "-p", "MainPID", "--value", unit]).stdout.strip())
    assert pid > 0, f"{unit} has no main process"
    return pid


def test_boot_reaches_running(container: Container) -> None:
    state = container.run(["systemctl", "is-system-running"], check=False).stdout.strip()
    assert state in ("running", "degraded")
    assert container.run(["systemctl", "is-active", "redis-server", "memcached"]).returncode == 0
    # We really are inside the container: its own pid 1 and hostname.
    assert container.run(["cat", "/proc/1/comm"]).stdout.strip() == "systemd"
    assert container.run(["hostname"]).stdout.strip() == container.machine


def test_redis_ping_and_set(container: Container) -> None:
    assert container.run(["redis-cli", "ping"]).stdout.strip() == "PONG"
    assert container.run(["redis-cli", "set", "k", "v"]).stdout.strip() == "OK"
    assert container.run(["redis-cli", "get", "k"]).stdout.strip() == "v"


def test_memcached_answers_stats(container: Container) -> None:
    script = "exec 3<>/dev/tcp/127.0.0.1/11211 && printf 'stats\\r\\nquit\\r\\n' >&3 && cat <&3"
    out = container.wait_for(["bash", "-c", script]).stdout
    stats = dict(line.split(" ", 2)[1:] for line in out.splitlines() if line.startswith("STAT "))
    assert "pid" in stats, out
    assert int(stats["pid"]) == main_pid(container, "memcached")


def test_redis_runs_as_redis_uid(container: Container) -> None:
    uid = passwd_uid(container, "redis")
    assert uid != 0
    pid = main_pid(container, "redis-server")
    status = container.run(["cat", f"/proc/{pid}/status"]).stdout
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    assert uid_line.split()[1:] == [str(uid)] * 4, uid_line


def test_libnss_systemd_cached_not_installed_and_installs_offline(container: Container) -> None:
    debs = container.run("ls /var/cache/apt/archives/libnss-systemd_*.deb").stdout.split()
    assert len(debs) == 1, debs
    assert container.run(["dpkg", "-s", "libnss-systemd"], check=False).returncode != 0
    # The cached .deb matches the installed systemd, so tests can install it without network.
    deb_version = container.run(["dpkg-deb", "-f", debs[0], "Version"]).stdout.strip()
    systemd_version = container.run(["dpkg-query", "-W", "-f=${Version}", "systemd"]).stdout
    assert deb_version == systemd_version
    container.run(["apt-get", "install", "-y", "--no-download", "libnss-systemd"], timeout=300)
    assert container.run(["dpkg", "-s", "libnss-systemd"]).returncode == 0


@pytest.mark.suites("bookworm")  # harness mechanics, the same whatever the guest: one suite is enough
@pytest.mark.parametrize("round_", [1, 2])
def test_changes_never_leak_between_containers(container: Container, e2e_root: Path, round_: int) -> None:
    # Whichever round runs second proves the first one's write did not leak into it.
    assert container.run(["test", "-e", LEAK_MARKER], check=False).returncode == 1
    container.run(["sh", "-c", f"echo {round_} > {LEAK_MARKER}"])
    assert container.read_text(LEAK_MARKER) == f"{round_}\n"
    assert not (e2e_root / LEAK_MARKER.lstrip("/")).exists()


@pytest.mark.suites("bookworm")  # harness mechanics, the same whatever the guest: one suite is enough
def test_leak_check_across_two_containers_in_one_test(make_container: ContainerFactory) -> None:
    first = make_container()
    first.run(["touch", LEAK_MARKER])
    first.shutdown()
    second = make_container()
    assert second.run(["test", "-e", LEAK_MARKER], check=False).returncode == 1


def test_run_api(container: Container) -> None:
    assert container.run(["cat"], input="hello\n").stdout == "hello\n"
    assert container.run("echo $HOME; exit 3", check=False).returncode == 3
    with pytest.raises(CommandError, match="it-went-wrong"):
        container.run("echo it-went-wrong >&2; false")
    with pytest.raises(subprocess.TimeoutExpired):
        container.run(["sleep", "30"], timeout=1)
    # The killed command does not linger inside the container.
    container.wait_for("! pgrep -x sleep", timeout=10)


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if text.encode() in cmdline:
                found.append(int(entry))
    return found


def _boot_then_fail(box: Container, seen: list[int]) -> None:
    with box:
        seen.append(box.nspawn_pid)
        assert box.nspawn_pid in _processes_mentioning(box.machine)
        assert box.init_alive
        raise RuntimeError("test body failed")


def test_shutdown_always_happens_and_leaves_no_nspawn(e2e_root: Path, tmp_path: Path) -> None:
    root = fresh_copy(tmp_path, e2e_root)
    try:
        box = Container(root, log_path=tmp_path / "nspawn.log")
        seen: list[int] = []
        with pytest.raises(RuntimeError, match="test body failed"):
            _boot_then_fail(box, seen)
        (nspawn_pid,) = seen
        assert box.shutdown_method == "poweroff", box.log_tail()
        assert box.nspawn is not None
        assert box.nspawn.returncode is not None
        assert _processes_mentioning(box.machine) == []
        assert not Path(f"/proc/{nspawn_pid}").exists()
        assert not box.running
        assert not box.init_alive
        assert f"Container {box.machine} has been shut down" in box.log_tail()
    finally:
        remove_tree(root)


def _block_boot(root: Path) -> None:
    unit = root / "etc/systemd/system/dm-block-boot.service"
    unit.write_text("[Service]\nType=oneshot\nExecStart=/bin/sleep 600\n", encoding="utf-8")
    wants = root / "etc/systemd/system/multi-user.target.wants"
    (wants / unit.name).symlink_to(f"/etc/systemd/system/{unit.name}")


@pytest.mark.suites("bookworm")  # harness mechanics, the same whatever the guest: one suite is enough
def test_boot_timeout_reports_and_cleans_up(e2e_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = fresh_copy(tmp_path, e2e_root)
    try:
        _block_boot(root)
        box = Container(root, log_path=tmp_path / "nspawn.log", boot_timeout=8)
        with pytest.raises(BootError, match="last state: starting") as raised:
            box.boot()
        assert "dm-block-boot.service" in str(raised.value)  # from systemctl list-jobs
        assert "--- systemctl --failed ---" in str(raised.value)
        tail = str(raised.value).split(f"--- {box.log_path} (tail) ---\n", 1)[1]
        assert "Started" in tail  # the console output systemd wrote while booting
        assert "last state: starting" in capsys.readouterr().err
        assert not box.running
        assert not box.init_alive
        assert _processes_mentioning(box.machine) == []
    finally:
        remove_tree(root)


# ---- no container needed: the skip/fail plumbing and the cache key


def test_prerequisites_need_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(E2EUnavailable, match="need root"):
        harness.check_prerequisites()


def test_prerequisites_need_the_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(harness, "_which", lambda name: None if name == "debootstrap" else "/x")
    with pytest.raises(E2EUnavailable, match="debootstrap"):
        harness.check_prerequisites()


def test_unreachable_mirror_makes_e2e_unavailable(tmp_path: Path) -> None:
    spec = RootSpec(mirror="http://127.0.0.1:9/debian")
    with pytest.raises(E2EUnavailable):
        harness.build_root(spec, tmp_path)
    assert not (tmp_path / spec.key / "root").exists()


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, False), ("", False), ("0", False), ("false", False), ("1", True), ("true", True)],
)
def test_ci_mode(monkeypatch: pytest.MonkeyPatch, value: str | None, expected: bool) -> None:
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert harness.ci_mode() is expected


def test_cache_key_follows_its_inputs() -> None:
    base = RootSpec()
    assert base.key == RootSpec().key
    variants = {
        base.key,
        RootSpec(mirror="http://example.org/debian").key,
        RootSpec(suite="trixie").key,
        RootSpec(packages=(*base.packages, "curl")).key,
        RootSpec(download_only=()).key,
    }
    assert len(variants) == 5


def test_suites_are_part_of_the_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DYNMIGRATE_E2E_MIRROR", raising=False)
    assert [harness.default_spec(s).suite for s in harness.SUITES] == ["bookworm", "trixie"]
    assert harness.default_spec("trixie").key != harness.default_spec("bookworm").key
    assert harness.default_spec().key == RootSpec().key == harness.default_spec("bookworm").key
    with pytest.raises(ValueError, match="unknown suite 'sid'"):
        harness.default_spec("sid")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ("bookworm", "trixie")),
        ("", ("bookworm", "trixie")),
        ("trixie", ("trixie",)),
        (" trixie, bookworm,trixie", ("trixie", "bookworm")),
    ],
)
def test_selected_suites(monkeypatch: pytest.MonkeyPatch, value: str | None, expected: tuple[str, ...]) -> None:
    if value is None:
        monkeypatch.delenv("DYNMIGRATE_E2E_SUITES", raising=False)
    else:
        monkeypatch.setenv("DYNMIGRATE_E2E_SUITES", value)
    assert harness.selected_suites() == expected


def test_selected_suites_refuses_unknown_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DYNMIGRATE_E2E_SUITES", "bookworm,forky")
    with pytest.raises(ValueError, match="unknown suite forky"):
        harness.selected_suites()


def test_a_suite_debootstrap_does_not_know_is_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts/bookworm").write_text("")
    monkeypatch.setenv("DEBOOTSTRAP_DIR", str(tmp_path))
    assert harness.debootstrap_knows("bookworm")
    assert not harness.debootstrap_knows("trixie")
    with pytest.raises(E2EUnavailable, match="debootstrap has no script for trixie"):
        harness._build_into(tmp_path / "root", RootSpec(suite="trixie"), tmp_path / "log")
    assert not (tmp_path / "root").exists()
