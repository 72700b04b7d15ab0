"""dynmigrate.ini is the one file where configparser is the right tool."""

from __future__ import annotations

from dynmigrate.collect.snapshot import parse_policy


def test_policy_is_read() -> None:
    policy, problems = parse_policy(
        "[never]\naccounts = postgres, backup\nunits = legacy.service\n"
        "[walk]\nskip = /srv/huge /var/lib/../lib/docker\n"
        "[probes]\nredis-server.service = redis-cli ping | grep -qx PONG\n",
        "site.ini",
    )
    assert problems == []
    assert policy.never_accounts == ("postgres", "backup")
    assert policy.never_units == ("legacy.service",)
    assert policy.skip_paths == ("/srv/huge", "/var/lib/docker")
    assert policy.probes == (("redis-server.service", "redis-cli ping | grep -qx PONG"),)


def test_policy_errors_are_problems_with_lines() -> None:
    _, problems = parse_policy("[never]\naccounts = a\naccounts = b\n", "site.ini")
    assert [(str(p.location), p.message.split(":")[0]) for p in problems] == [("site.ini:3", "policy file")]
    _, problems = parse_policy("[nope]\nx = 1\n[never]\nbogus = 1\n", "site.ini")
    assert [p.message for p in problems] == [
        "policy file: unknown section [nope]",
        "policy file: unknown key bogus in [never]",
    ]
