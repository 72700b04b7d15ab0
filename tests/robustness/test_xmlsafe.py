"""The D-Bus policy reader refuses entity declarations, internal DTD subsets and external
entities, while reading real policy files (which carry a DOCTYPE line)."""

from __future__ import annotations

import pytest

from dynmigrate.collect.references import parse_dbus_policy
from dynmigrate.collect.xmlsafe import UnsafeXML, parse_xml
from dynmigrate.model.common import RelPath
from dynmigrate.model.references import Action

REAL = b"""<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <policy user="avahi">
    <allow own="org.freedesktop.Avahi"/>
  </policy>
  <policy context="default">
    <allow send_destination="org.freedesktop.Avahi"/>
  </policy>
</busconfig>
"""


def test_real_policy_with_public_doctype_is_read() -> None:
    refs, problems = parse_dbus_policy(REAL, RelPath("/usr/share/dbus-1/system.d/avahi-dbus.conf"))
    assert problems == []
    assert [(r.name, r.action, r.location.line, r.detail) for r in refs] == [
        ("avahi", Action.OWNS_NAME, 4, "may own org.freedesktop.Avahi")
    ]


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        (b'<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>', "DTD with an internal subset refused"),
        (b'<!DOCTYPE a [<!ENTITY % p "y">]><a/>', "DTD with an internal subset refused"),
        (
            b'<!DOCTYPE a SYSTEM "file:///etc/shadow"><a>&x;</a>',
            "entity reference to an undeclared or external entity refused",
        ),
        (b"<a>" * 100 + b"</a>" * 100, "too many or too deeply nested elements"),
        (b"<a", "not well-formed XML (unclosed token)"),
        (b"", "not well-formed XML (no element found)"),
    ],
)
def test_dangerous_or_broken_xml_is_refused(doc: bytes, reason: str) -> None:
    with pytest.raises(UnsafeXML) as info:
        parse_xml(doc)
    assert info.value.reason == reason


def test_billion_laughs_never_expands() -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
        + b"".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">'.encode() for i in range(9))
        + b"]><l>&j;</l>"
    )
    refs, problems = parse_dbus_policy(bomb, RelPath("/etc/dbus-1/system.d/bomb.conf"))
    assert refs == []
    assert [(p.location.line, p.message) for p in problems] == [
        (1, "D-Bus policy refused: DTD with an internal subset refused")
    ]
