"""NSS asks a network directory (LDAP, SSSD, NIS, winbind) for users."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, RuleContext, Severity

ID = "DM504"
NAME = "networked-nss"
SEVERITY = Severity.WARNING
EFFECT = Effect.NEEDS_MANUAL
TAGS = ("environment", "nss")
SUMMARY = "Allocating a dynamic UID does NSS lookups; a network directory can deadlock or serve the dynamic range."
FIX = "Keep the network directory's IDs out of 61184-65519 and resolve local users first."
FACTS = ("F4.2",)
NETWORKED = frozenset({"ldap", "sss", "nis", "nisplus", "winbind", "hesiod"})


def check(ctx: RuleContext) -> Iterator[Hit]:
    nss = ctx.snap.accounts.nss
    found = sorted(set(nss.passwd_sources) & NETWORKED)
    if not found:
        return
    for acc in ctx.service_accounts():
        yield Hit(
            acc.name,
            f"nsswitch passwd uses {', '.join(found)}: make sure it never answers for 61184-65519",
            nss.location,
        )
