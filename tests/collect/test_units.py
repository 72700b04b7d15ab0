"""Unit loading with systemd's semantics (facts F6.5-F6.10)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dynmigrate.collect.rootfs import RootFS
from dynmigrate.collect.units import expand_specifiers, load_units, specifier_table, unescape
from dynmigrate.model.units import Directive, LoadState, Unit
from treebuilder import Dir, Link, Tree, build

SVC = "[Service]\nExecStart=/usr/bin/foo\n"


def load(tmp_path: Path, tree: Tree) -> dict[str, Unit]:
    build(tmp_path, tree)
    res = load_units(RootFS(tmp_path))
    return {str(u.name): u for u in res.units}


def val(unit: Unit, key: str) -> str | None:
    d: Directive | None = unit.value("Service", key)
    return None if d is None else d.value


def test_etc_replaces_usr_lib_completely(tmp_path: Path) -> None:
    units = load(
        tmp_path,
        {
            "usr/lib/systemd/system/a.service": SVC + "User=vendor\nGroup=g\n",
            "etc/systemd/system/a.service": SVC + "User=local\n",
        },
    )
    a = units["a.service"]
    assert a.fragment == "/etc/systemd/system/a.service"
    assert val(a, "User") == "local"
    assert a.value("Service", "Group") is None


def test_dropins_merge_in_lexicographic_order_across_directories(tmp_path: Path) -> None:
    units = load(
        tmp_path,
        {
            "usr/lib/systemd/system/a-b-c.service": SVC + "User=one\n",
            "usr/lib/systemd/system/a-b-c.service.d/20-x.conf": "[Service]\nUser=vendor20\n",
            "etc/systemd/system/a-b-c.service.d/10-x.conf": "[Service]\nUser=etc10\n",
            "usr/lib/systemd/system/a-.service.d/30-prefix.conf": "[Service]\nEnvironment=P=1\n",
            "usr/lib/systemd/system/a-b-.service.d/40-prefix.conf": "[Service]\nEnvironment=P=2\n",
            "usr/lib/systemd/system/service.d/05-type.conf": "[Service]\nEnvironment=T=1\n",
            # same name in /etc beats /usr/lib; /dev/null masks the lower one
            "usr/lib/systemd/system/a-b-c.service.d/50-masked.conf": "[Service]\nUser=never\n",
            "etc/systemd/system/a-b-c.service.d/50-masked.conf": Link("/dev/null"),
        },
    )
    a = units["a-b-c.service"]
    assert [str(p) for p in a.dropins] == [
        "/usr/lib/systemd/system/service.d/05-type.conf",
        "/etc/systemd/system/a-b-c.service.d/10-x.conf",
        "/usr/lib/systemd/system/a-b-c.service.d/20-x.conf",
        "/usr/lib/systemd/system/a-.service.d/30-prefix.conf",
        "/usr/lib/systemd/system/a-b-.service.d/40-prefix.conf",
    ]
    assert val(a, "User") == "vendor20"
    assert [d.value for d in a.values("Service", "Environment")] == ["T=1", "P=1", "P=2"]


def test_masks_by_symlink_and_by_empty_file(tmp_path: Path) -> None:
    units = load(
        tmp_path,
        {
            "usr/lib/systemd/system/m1.service": SVC,
            "etc/systemd/system/m1.service": Link("/dev/null"),
            "usr/lib/systemd/system/m2.service": SVC,
            "etc/systemd/system/m2.service": "",
        },
    )
    assert units["m1.service"].state is LoadState.MASKED
    assert units["m2.service"].state is LoadState.MASKED


def test_alias_symlink_and_absolute_links_resolve_inside_root(tmp_path: Path) -> None:
    units = load(
        tmp_path,
        {
            "usr/lib/systemd/system/real.service": SVC + "User=foo\n",
            "etc/systemd/system/other.service": Link("/usr/lib/systemd/system/real.service"),
            "etc/systemd/system/linked.service": Link("/opt/app/linked.service"),
            "opt/app/linked.service": SVC,
        },
    )
    assert "other.service" not in units
    assert units["real.service"].aliases == ("other.service",)
    assert units["linked.service"].fragment == "/opt/app/linked.service"


def test_enabled_template_instance_gets_template_dropins_and_specifiers(tmp_path: Path) -> None:
    units = load(
        tmp_path,
        {
            "usr/lib/systemd/system/db@.service": SVC + "User=db-%i\nStateDirectory=db/%I\n",
            "usr/lib/systemd/system/db@.service.d/10-t.conf": "[Service]\nEnvironment=NAME=%n\n",
            "etc/systemd/system/multi-user.target.wants/db@15-main.service": Link(
                "/usr/lib/systemd/system/db@.service"
            ),
        },
    )
    inst = units["db@15-main.service"]
    assert inst.template == "db@.service"
    assert inst.enabled
    assert val(inst, "User") == "db-15-main"
    assert val(inst, "StateDirectory") == "db/15/main"
    assert [d.value for d in inst.values("Service", "Environment")] == ["NAME=db@15-main.service"]
    assert units["db@.service"].is_template


def test_sysv_script_without_native_unit(tmp_path: Path) -> None:
    build(
        tmp_path,
        {
            "etc/init.d/legacy": "#!/bin/sh\n",
            "etc/init.d/native": "#!/bin/sh\n",
            "usr/lib/systemd/system/native.service": SVC,
            "etc/init.d/README": "x",
        },
    )
    (tmp_path / "etc/init.d/legacy").chmod(0o755)
    (tmp_path / "etc/init.d/native").chmod(0o755)
    units = {str(u.name): u for u in load_units(RootFS(tmp_path)).units}
    assert units["legacy.service"].source_path == "/etc/init.d/legacy"
    assert units["legacy.service"].generated
    assert not units["native.service"].generated


def test_generator_output_replaces_the_sysv_synthesis(tmp_path: Path) -> None:
    """With /run/systemd/generator.late present (a booted system, or a rehearsal's copy of its
    generator output) the SysV units are the ones systemd-sysv-generator wrote, once each; a script
    it left out is not synthesised as a unit the system does not have."""
    generated = "[Unit]\nSourcePath=/etc/init.d/legacy\n[Service]\nType=forking\nExecStart=/etc/init.d/legacy start\n"
    build(
        tmp_path,
        {
            "etc/init.d/legacy": "#!/bin/sh\n",
            "etc/init.d/left-out": "#!/bin/sh\n",
            "run/systemd/generator.late/legacy.service": generated,
            "run/systemd/generator.late/multi-user.target.wants/legacy.service": Link("../legacy.service"),
        },
    )
    (tmp_path / "etc/init.d/legacy").chmod(0o755)
    (tmp_path / "etc/init.d/left-out").chmod(0o755)
    units = load_units(RootFS(tmp_path)).units
    assert [(str(u.name), u.found_at, u.source_path, u.generated, u.enabled) for u in units] == [
        (
            "legacy.service",
            "/run/systemd/generator.late/legacy.service",
            "/etc/init.d/legacy",
            True,
            True,
        )
    ]


def test_no_sysv_synthesis_where_systemd_sysv_generator_ran_and_made_nothing(tmp_path: Path) -> None:
    """generator.late is there (systemd makes it before the generators run) and systemd-sysv-generator
    made nothing: the script is no unit of that system."""
    build(tmp_path, {"etc/init.d/left-out": "#!/bin/sh\n", "run/systemd/generator.late/": Dir()})
    (tmp_path / "etc/init.d/left-out").chmod(0o755)
    assert [str(u.name) for u in load_units(RootFS(tmp_path)).units] == []


@pytest.mark.parametrize(
    "layout",
    [
        {"run/systemd/generator/getty.target.wants/": Dir(), "run/systemd/generator.early/": Dir()},
        {"run/systemd/elsewhere/": Dir(), "run/systemd/generator.late": Link("elsewhere")},
    ],
    ids=["other-generator-dirs", "late-is-a-link"],
)
def test_sysv_synthesis_unless_generator_late_is_a_real_directory(tmp_path: Path, layout: Tree) -> None:
    """Only a real /run/systemd/generator.late (where systemd-sysv-generator writes) says the SysV
    generator ran: a stale generator/ or generator.early/, or a link at generator.late, does not."""
    build(tmp_path, {"etc/init.d/legacy": "#!/bin/sh\n", **layout})
    (tmp_path / "etc/init.d/legacy").chmod(0o755)
    assert [str(u.name) for u in load_units(RootFS(tmp_path)).units] == ["legacy.service"]


def test_a_generator_made_instance_is_an_enabled_unit(tmp_path: Path) -> None:
    """postgresql-common's generator wants each cluster's instance from postgresql.service."""
    units = load(
        tmp_path,
        {
            "lib/systemd/system/postgresql@.service": SVC + "User=postgres\n",
            "lib/systemd/system/postgresql.service": "[Service]\nExecStart=/bin/true\n",
            "etc/systemd/system/multi-user.target.wants/postgresql.service": Link(
                "/lib/systemd/system/postgresql.service"
            ),
            "run/systemd/generator/postgresql.service.wants/postgresql@15-main.service": Link(
                "/lib/systemd/system/postgresql@.service"
            ),
        },
    )
    inst = units["postgresql@15-main.service"]
    assert (inst.template, inst.enabled, val(inst, "User")) == ("postgresql@.service", True, "postgres")


def test_broken_and_looping_files_become_problems(tmp_path: Path) -> None:
    build(
        tmp_path,
        {
            "etc/systemd/system/loop.service": Link("loop2.service"),
            "etc/systemd/system/loop2.service": Link("loop.service"),
            "etc/systemd/system/bin.service": b"\x7fELF\x00\x00",
            "etc/systemd/system/dir.service": Dir(),
        },
    )
    res = load_units(RootFS(tmp_path))
    messages = sorted((str(p.location), p.message) for p in res.problems)
    assert ("/etc/systemd/system/bin.service", "binary content (NUL byte): file ignored") in messages
    assert ("/etc/systemd/system/dir.service", "unit path is a dir, not a file: ignored") in messages
    assert any(loc.startswith("/etc/systemd/system/loop") and "symbolic links" in msg for loc, msg in messages)


def test_specifiers() -> None:
    table = specifier_table("foo-bar@a-b\\x2dc.service")
    assert expand_specifiers("%n %N %p %P %i %I %j %S/%p %C %L %t %E %% %u %h %Z", table) == (
        "foo-bar@a-b\\x2dc.service foo-bar@a-b\\x2dc foo-bar foo/bar a-b\\x2dc a/b-c bar "
        "/var/lib/foo-bar /var/cache /var/log /run /etc % root /root %Z"
    )
    assert unescape("a-b\\x2dc") == "a/b-c"


def test_a_file_vanishing_during_the_walk_is_a_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dynmigrate.collect import ownership

    build(tmp_path, {"var/lib/a/gone": "x", "var/lib/a/kept": "y"})
    real_scandir = os.scandir

    class Gone:
        """The entry readdir returned, removed before its stat (the walk stats through DirEntry.stat)."""

        name = "gone"

        def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
            raise FileNotFoundError(self.name)

    class Flaky:
        def __init__(self, fd: int) -> None:
            self.it = real_scandir(fd)

        def __enter__(self) -> Flaky:
            return self

        def __exit__(self, *exc: object) -> None:
            self.it.close()

        def __iter__(self) -> Iterator[object]:
            for entry in self.it:
                yield Gone() if entry.name == "gone" else entry

    monkeypatch.setattr(os, "scandir", Flaky)
    data, problems = ownership.walk_ownership(RootFS(tmp_path))
    assert [(str(p.location), p.message) for p in problems] == [("/var/lib/a/gone", "vanished during the walk")]
    assert data.entries == 4  # var, var/lib, var/lib/a, var/lib/a/kept; not the vanished one
