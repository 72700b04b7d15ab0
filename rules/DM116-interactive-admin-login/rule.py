"""People log in as the account: a login shell and interactive traces in its home."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, RuleContext, Severity

ID = "DM116"
NAME = "interactive-admin-login"
SEVERITY = Severity.ERROR
EFFECT = Effect.BLOCKS
TAGS = ("accounts", "login")
SUMMARY = (
    "A login shell and shell or client history in the home: admins log in as the account to run the "
    "service's tools; a dynamic user cannot be logged into."
)
FIX = "Keep the account static (harden the unit instead), or move the admins to their own accounts first."
FACTS = ("F1.6", "F4.5", "F3.4")

# Files that only an interactive session writes (shells, database clients, less, vim, python).
TRACE_SUFFIXES = ("_history", "history", ".lesshst", ".viminfo")


def check(ctx: RuleContext) -> Iterator[Hit]:
    for acc in ctx.service_accounts():
        if not acc.has_login_shell:
            continue
        home = acc.home.rstrip("/") or "/"
        if home == "/":
            continue
        fact = ctx.snap.path(home)
        if fact is None or not fact.exists:
            continue
        traces = sorted(n for n in fact.dot_entries if n.endswith(TRACE_SUFFIXES))
        if not traces:
            continue
        config = [e.path for e in ctx.q.etc_entries_of(acc)]
        what = f"login shell {acc.shell} and {', '.join(traces)} in {home}: people log in as {acc.name}"
        if config:
            yield Hit(
                acc.name,
                f"{what}, and it owns its configuration ({config[0]}{', ...' if len(config) > 1 else ''}) that the "
                "plan would give to root; a dynamic user cannot be logged into, so their work stops",
                acc.location,
                (home,),
            )
        else:
            yield Hit(
                acc.name,
                f"{what}; a dynamic user cannot be logged into: give them accounts of their own, then set the "
                "shell to /usr/sbin/nologin",
                acc.location,
                (home,),
                Effect.NEEDS_MANUAL,
            )
