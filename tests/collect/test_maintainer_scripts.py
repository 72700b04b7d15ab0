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


LOOPS = r"""#!/bin/sh
set -e
for GROUP in frr frrvty
do
	if ! getent group "${GROUP}" > /dev/null 2>&1
	then
		groupadd --system "${GROUP}"
	fi
done
for u in 'one' "two"; do adduser --system $u; done
for d in /var/lib/foo /var/log/foo; do
	chown foo:foovty "$d"
done
for outer in p q; do
	for inner in 1 2
	do useradd -r "$outer$inner"
	done
done
for tool in addgroup; do "$tool" --system by-name; done
for g in $GROUPS; do addgroup --system "$g"; done
for g in *; do addgroup --system "$g"; done
for g in z; do addgroup --system "$g"; done; addgroup --system after
"""


def test_a_loop_over_literal_words_is_read_once_per_word(monkeypatch: pytest.MonkeyPatch) -> None:
    def found() -> list[tuple[int, str, bool]]:
        return [(a.location.line, a.command, a.guarded_by_getent) for a in R.scan_maintainer_script(LOOPS, P)]

    fast = found()
    monkeypatch.setattr(R, "_may_act", lambda expanded, functions: True)
    assert fast == found()
    assert fast == [
        (7, "groupadd --system frr", True),
        (7, "groupadd --system frrvty", True),
        (10, "adduser --system one", False),
        (10, "adduser --system two", False),
        (12, "chown foo:foovty /var/lib/foo", False),
        (12, "chown foo:foovty /var/log/foo", False),
        (16, "useradd -r p1", False),
        (16, "useradd -r p2", False),
        (16, "useradd -r q1", False),
        (16, "useradd -r q2", False),
        (19, "addgroup --system by-name", False),
        (22, "addgroup --system after", False),
    ]
