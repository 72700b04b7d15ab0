"""Configuration readable only through the account (owner or group, no world read)."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, RuleContext, Severity
from dynmigrate.model.common import Location
from dynmigrate.model.files import FileKind

ID = "DM302"
NAME = "config-unreadable"
SEVERITY = Severity.WARNING
EFFECT = Effect.INFORMS
TAGS = ("files", "config")
SUMMARY = (
    "Config owned by the account with no world read becomes unreadable once the account is "
    "gone; the plan gives it to root, mode kept, and hands it to the service as a credential."
)
FIX = "None needed: the plan gives the config to root, mode kept, and hands it over with LoadCredential=."
FACTS = ("F3.4", "F2.5")


def check(ctx: RuleContext) -> Iterator[Hit]:
    for acc in ctx.service_accounts():
        for entry in ctx.q.etc_entries_of(acc):
            if entry.kind is not FileKind.FILE or entry.mode & 0o004:
                continue
            if ctx.snap.secret_hints(entry.path):
                continue  # DM303
            owner = f"{'owner' if entry.uid == acc.uid else 'group'} {acc.name}"
            yield Hit(
                acc.name,
                f"{entry.path} is {entry.mode_str()} with {owner}: unreadable to a dynamic UID; the plan "
                f"gives it to root with mode {entry.mode_str()} kept and hands it to the service with LoadCredential=",
                Location(entry.path),
                (entry.path,),
            )
