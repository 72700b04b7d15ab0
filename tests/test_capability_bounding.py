"""Unit.may_change_uid: whether CAP_SETUID survives the unit's CapabilityBoundingSet= lines, merged
as systemd merges them (lists ORed, "~" lists removed, an empty assignment empties the set)."""

from __future__ import annotations

import pytest

from builders import unit


@pytest.mark.parametrize(
    ("lines", "may"),
    [
        ([], True),
        (["CAP_NET_BIND_SERVICE  CAP_NET_RAW"], False),
        (["CAP_NET_RAW", "CAP_SETUID CAP_SETGID"], True),
        (["~CAP_SYS_ADMIN"], True),
        (["~CAP_SETUID CAP_SYS_ADMIN"], False),
        (["~CAP_SETUID", "CAP_SETUID"], True),
        (["CAP_SETUID", "~CAP_SETUID"], False),
        (["CAP_SETUID", ""], False),
        (["", "~CAP_SYS_ADMIN"], False),
    ],
)
def test_capability_bounding_set(lines: list[str], may: bool) -> None:
    text = "[Service]\nExecStart=/usr/sbin/d\n" + "".join(f"CapabilityBoundingSet={v}\n" for v in lines)
    assert unit("d.service", text).may_change_uid is may
