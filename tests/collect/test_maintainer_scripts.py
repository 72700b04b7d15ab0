"""The maintainer-script reader skips segments without splitting them when no word can be a tracked
command; what it finds must be what it found when it split every segment."""

from __future__ import annotations

from dataclasses import astuple

import pytest

from dynmigrate.collect import references as R
from dynmigrate.model.common import RelPath

P = RelPath("/var/lib/dpkg/info/foo.postinst")

SCRIPT = r"""#!/bin/sh
set -e
NAME=foo
TOOL=adduser
mkuser() {
	"$TOOL" --system --group --home /var/lib/$1 $1
}
echo "configuring $NAME"
'add'user --system quoted
add\user --system escaped
"use"radd -r plain-quoted
mkuser $NAME
if ! dpkg-statoverride --list /var/lib/foo >/dev/null; then
	ch'own' -R foo:foo /var/lib/foo
fi
d"pkg-stat"override --update --add foo foo 0750 /var/log/foo
de\luser --system retired
systemd-sysusers foo.conf
printf 'nothing here\n' | tee /dev/null
"""


def _found() -> list[tuple[object, ...]]:
    return [astuple(a) for a in R.scan_maintainer_script(SCRIPT, P)]


def test_the_prefilter_loses_no_command(monkeypatch: pytest.MonkeyPatch) -> None:
    fast = _found()
    monkeypatch.setattr(R, "_may_act", lambda expanded, functions: True)
    assert fast == _found()
    assert [(a.location.line, a.command, a.guarded_by_statoverride) for a in R.scan_maintainer_script(SCRIPT, P)] == [
        (9, "adduser --system quoted", False),
        (10, "adduser --system escaped", False),
        (11, "useradd -r plain-quoted", False),
        (6, "adduser --system --group --home /var/lib/foo foo", False),
        (14, "chown -R foo:foo /var/lib/foo", True),
        (16, "dpkg-statoverride --update --add foo foo 0750 /var/log/foo", False),
        (17, "deluser --system retired", False),
        (18, "systemd-sysusers foo.conf", False),
    ]
