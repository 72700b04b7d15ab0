"""User switches in `Exec*=sh -c '...'` lines, with the unit's environment files filled in."""

from __future__ import annotations

from dynmigrate.collect import references as R
from dynmigrate.model.common import Location, RelPath

LOC = Location(RelPath("/usr/lib/systemd/system/slapd.service"), 22)
KNOWN = frozenset({"openldap", "root"})
SCRIPT = (
    'mkdir -p /run/slapd; chown "$SLAPD_USER":"$SLAPD_GROUP" /run/slapd; '
    'exec /usr/sbin/slapd -d0 ${SLAPD_SERVICES:+-h "$SLAPD_SERVICES"} '
    '${SLAPD_USER:+-u "$SLAPD_USER"} ${SLAPD_GROUP:+-g "$SLAPD_GROUP"} $SLAPD_OPTIONS'
)


def test_shell_parameters_follow_the_environment() -> None:
    env = {"A": "x", "E": ""}
    assert R.expand_shell_params("${A:+-u $A} ${E:+-u $E} ${B:+-u $B}", env) == "-u x  ${B:+-u $B}"
    assert R.expand_shell_params("${E:-d} ${E-d} ${A:-d} ${E+set}", env) == "d  x set"


def test_the_script_of_sh_dash_c() -> None:
    assert R.shell_script_argument(["sh", "-c", "exec foo"]) == "exec foo"
    assert R.shell_script_argument(["/bin/bash", "-ec", "exec foo"]) == "exec foo"
    assert R.shell_script_argument(["/usr/bin/foo", "-c", "x"]) is None


def test_environment_file_values_name_the_switch() -> None:
    env = R.parse_environment_file('# comment\nSLAPD_USER="openldap"\nexport SLAPD_GROUP=openldap\nSLAPD_CONF=\n')
    assert env == {"SLAPD_USER": "openldap", "SLAPD_GROUP": "openldap", "SLAPD_CONF": ""}
    refs = R.scan_shell_command(SCRIPT, env, LOC, "ExecStart", KNOWN, "slapd.service")
    assert [(r.name, r.confidence, r.detail) for r in refs] == [("openldap", "likely", "ExecStart: sh -c: -u openldap")]


def test_an_empty_user_variable_names_nobody() -> None:
    refs = R.scan_shell_command(SCRIPT, {"SLAPD_USER": ""}, LOC, "ExecStart", KNOWN, "slapd.service")
    assert refs == []
