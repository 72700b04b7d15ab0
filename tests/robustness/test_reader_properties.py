"""Property tests: arbitrary bytes never raise out of a reader; problems carry file and line.

Every reader is fed random bytes (decoded the way RootFS decodes files: UTF-8 with
surrogateescape) and random mutations of realistic lines. The unit-file writer round-trips.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dynmigrate.collect import accounts as A
from dynmigrate.collect import references as R
from dynmigrate.collect.snapshot import parse_policy
from dynmigrate.collect.unitfile import parse_unit_text
from dynmigrate.model.common import RelPath
from dynmigrate.model.findings import Problem
from dynmigrate.model.unitsyntax import render_unit
from robustness_stats import count

P = RelPath("/etc/x")
EXAMPLES = 300
QUICK = 100  # examples of the quick tier's samples of the tests the slow tier (`pytest -m e2e`) runs in full
KNOWN = frozenset({"redis", "www-data", "postgres", "memcache", "adm"})

SEEDS = {
    "unit": "[Unit]\nDescription=x\n[Service]\nUser=redis\nExecStart=/usr/bin/redis-server \\\n  --port 0\n",
    "passwd": "root:x:0:0:root:/root:/bin/bash\nredis:x:101:102::/var/lib/redis:/usr/sbin/nologin\n",
    "group": "root:x:0:\nredis:x:102:alice,bob\n",
    "shadow": "root:$6$s$h:19000:0:99999:7:::\nredis:!:19000::::::\n",
    "gshadow": "redis:!::alice\n",
    "logindefs": "SYS_UID_MAX 999\nSYS_GID_MAX   0x3e7\n",
    "addusercf": "LAST_SYSTEM_UID=999\n",
    "nsswitch": "passwd: files systemd [NOTFOUND=return]\ngroup: files\n",
    "crontab": "SHELL=/bin/sh\n*/5 * * * * postgres find /tmp -user redis -delete\n@reboot root sudo -u redis true\n",
    "sudoers": "%adm ALL=(redis) NOPASSWD: /bin/true\nredis ALL=(ALL:ALL) ALL\n",
    "tmpfiles": "d /run/redis 0755 redis redis -\nz /var/log/x 0640 - adm\n",
    "sysusers": 'u redis 101 "Redis" /var/lib/redis\ng adm 4\nm redis adm\n',
    "logrotate": (
        "/var/log/redis/*.log {\n  su redis adm\n  create 0640 redis adm\n  postrotate\n    kill x\n  endscript\n}\n"
    ),
    "dbus": '<busconfig><policy user="redis"><allow own="org.x"/></policy><deny group="adm"/></busconfig>',
    "polkit": 'polkit.addRule(function(a, s) { if (s.user == "redis" || s.isInGroup("adm")) return "yes"; });\n',
    "statoverride": "redis redis 640 /etc/redis/redis.conf\nroot adm 2750 /var/log/x\n",
    "postinst": (
        'U=redis\nif ! getent passwd $U; then\n adduser --system --group "$U"\nfi\nchown $U:adm /var/log/redis\n'
    ),
    "policy": "[never]\naccounts = postgres\n[walk]\nskip = /srv\n[probes]\nredis-server.service = redis-cli ping\n",
}


def _parsed(kind: str) -> Callable[[str], Any]:
    return {
        "unit": lambda t: parse_unit_text(t, P),
        "passwd": lambda t: A.parse_passwd(t, P),
        "group": lambda t: A.parse_group(t, P),
        "shadow": lambda t: A.parse_shadow(t, P),
        "gshadow": lambda t: A.parse_gshadow(t, P),
        "logindefs": lambda t: A.parse_keyvalue(t, P, frozenset({"SYS_UID_MAX", "SYS_GID_MAX"}), " "),
        "addusercf": lambda t: A.parse_keyvalue(t, P, frozenset({"LAST_SYSTEM_UID"}), "="),
        "nsswitch": lambda t: A.parse_nsswitch(t, P),
        "crontab": lambda t: R.parse_crontab(t, P, KNOWN),
        "sudoers": lambda t: R.parse_sudoers(t, P, KNOWN),
        "tmpfiles": lambda t: R.parse_tmpfiles(t, P),
        "sysusers": lambda t: R.parse_sysusers(t, P),
        "logrotate": lambda t: R.parse_logrotate(t, P),
        "dbus": lambda t: R.parse_dbus_policy(t.encode("utf-8", "surrogateescape"), P),
        "polkit": lambda t: R.parse_polkit(t, P, KNOWN),
        "statoverride": lambda t: R.parse_statoverride(t, P),
        "postinst": lambda t: (R.scan_maintainer_script(t, P), []),
        "policy": lambda t: parse_policy(t, str(P)),
    }[kind]


def _check(kind: str, text: str, *, counted: bool = True) -> None:
    result = _parsed(kind)(text)
    problems = result[1]
    nlines = len(re.split(r"\r\n|\r|\n", text))  # expat also counts a lone CR as a line end
    for p in problems:
        assert isinstance(p, Problem)
        assert p.location.file == P
        assert 0 <= p.location.line <= nlines
    if counted:
        count(f"property:{kind}")


def decoded(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


NASTY = st.sampled_from(
    ["\x00", "\\", "\n", "\r", "[", "]", "=", "%", "$(", "`", ";", "\udcff", "\t", "#", ":", "<!ENTITY"]
)


@st.composite
def mutated(draw: st.DrawFn, kind: str) -> str:
    seed = SEEDS[kind]
    pieces = list(seed)
    for _ in range(draw(st.integers(0, 8))):
        pos = draw(st.integers(0, len(pieces)))
        pieces.insert(pos, draw(st.one_of(NASTY, st.text(string.printable, max_size=5))))
    drop: bool = draw(st.booleans())
    if pieces and drop:
        del pieces[draw(st.integers(0, len(pieces) - 1))]
    return "".join(pieces)


KINDS = sorted(SEEDS)


@settings(max_examples=EXAMPLES, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(kind=st.sampled_from(KINDS), data=st.binary(max_size=400))
def test_random_bytes_never_raise(kind: str, data: bytes) -> None:
    _check(kind, decoded(data))


@pytest.mark.e2e  # the slow tier: 900 examples; the quick tier runs 100 (below)
@settings(max_examples=EXAMPLES * 3, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.data())
def test_mutated_realistic_input_never_raises(data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from(KINDS))
    _check(kind, data.draw(mutated(kind)))


@settings(max_examples=QUICK, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.data())
def test_mutated_realistic_input_never_raises_on_100_inputs(data: st.DataObject) -> None:
    """The quick tier's sample of the test above (uncounted: the README counts the slow tier's)."""
    kind = data.draw(st.sampled_from(KINDS))
    _check(kind, data.draw(mutated(kind)), counted=False)


KEY = st.text(string.ascii_letters + string.digits + "-", min_size=1, max_size=20).filter(lambda k: k[0].isalpha())
VALUE = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\n\r\\"), max_size=40).map(
    str.strip
)
SECTION = st.sampled_from(["Unit", "Service", "Install", "Socket", "X-Custom"])


UNIT_SECTIONS = st.lists(st.tuples(SECTION, st.lists(st.tuples(KEY, VALUE), max_size=6)), min_size=1, max_size=4)


def _round_trip(sections: list[tuple[str, list[tuple[str, str]]]]) -> None:
    text = render_unit(sections, header="dynmigrate round trip")
    unit, problems = parse_unit_text(text, P)
    assert problems == []
    assert [(d.section, d.key, d.value) for d in unit.directives] == [
        (name, k, v) for name, items in sections for k, v in items
    ]


@pytest.mark.e2e  # the slow tier: 300 files; the quick tier round-trips 100 (below)
@settings(max_examples=EXAMPLES, deadline=None)
@given(UNIT_SECTIONS)
def test_unit_writer_round_trips(sections: list[tuple[str, list[tuple[str, str]]]]) -> None:
    _round_trip(sections)
    count("property:unit-roundtrip")


@settings(max_examples=QUICK, deadline=None)
@given(UNIT_SECTIONS)
def test_unit_writer_round_trips_100_files(sections: list[tuple[str, list[tuple[str, str]]]]) -> None:
    """The quick tier's sample of the test above (uncounted)."""
    _round_trip(sections)
