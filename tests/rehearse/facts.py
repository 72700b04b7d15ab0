"""Facts of rehearsals built in memory (what the worker would observe)."""

from __future__ import annotations

from dataclasses import replace

from dynmigrate.rehearse.model import AccountFacts, Step, UnitCheck

PROBE = "redis-cli -h 127.0.0.1 ping | grep -qx PONG"
STAGES = tuple(Step(f"migrate.sh stage{n}", True, 0, 4.0 + n) for n in range(4))
ROLLBACKS = tuple(Step(f"rollback.sh stage{n}", True, 0, 2.0 + n) for n in reversed(range(4)))


def check(
    uid: int, *, active: bool = True, probe_ok: bool | None = True, answer: str = "answered (exit 0)"
) -> UnitCheck:
    return UnitCheck("redis-server.service", active, (uid,), PROBE, probe_ok, answer)


def redis(**changes: object) -> AccountFacts:
    """A redis rehearsal where everything worked; changes= turns it into the case under test."""
    base = AccountFacts(
        account="redis",
        verdict="needs-manual-steps",
        reason="DM110: an upgrade of redis-tools recreates the account",
        units=("redis-server.service",),
        planned=True,
        manual_steps=("DM110-redis",),
        confirmed=("DM110-redis",),
        before=(check(101),),
        stages=STAGES,
        migrated=(check(65030),),
        rollbacks=ROLLBACKS,
        restored=(check(101),),
        static_uid=101,
        account_restored=True,
        manifest_restored=True,
        seconds=44.0,
        access_checked=14,
    )
    return replace(base, **changes)  # type: ignore[arg-type]
