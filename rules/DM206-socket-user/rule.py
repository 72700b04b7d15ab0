"""A .socket unit creates its socket for the account (SocketUser=/SocketGroup=)."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, RuleContext, Severity
from dynmigrate.model.references import RefKind, Target

ID = "DM206"
NAME = "socket-user"
SEVERITY = Severity.ERROR
EFFECT = Effect.BLOCKS
TAGS = ("units", "sockets")
SUMMARY = (
    "SocketUser=/SocketGroup= are resolved when the socket is created: the name must stay static "
    "(informs only when nothing starts the socket)."
)
FIX = "Keep the account static, or drop SocketUser= when the service checks access itself."
FACTS = ("F4.7",)


def check(ctx: RuleContext) -> Iterator[Hit]:
    for acc in ctx.service_accounts():
        grp = ctx.q.primary_group(acc)
        refs = ctx.q.refs_to(acc.name, Target.USER)
        if grp is not None and str(grp.name) == str(acc.name):
            refs += ctx.q.refs_to(grp.name, Target.GROUP)
        for ref in refs:
            if ref.kind is not RefKind.SOCKET:
                continue
            if ctx.q.pulled_in_by(ref.unit):
                yield Hit(acc.name, f"{ref.unit} sets {ref.detail}", ref.location, (ref.unit,))
            else:
                yield Hit(
                    acc.name,
                    f"{ref.unit} sets {ref.detail}, but it is not enabled and no unit wants it: it never starts "
                    "unless someone starts it by hand (keep it that way, or drop SocketUser=)",
                    ref.location,
                    (ref.unit,),
                    Effect.INFORMS,
                )
