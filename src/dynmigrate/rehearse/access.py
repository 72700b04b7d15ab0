"""What an unprivileged other user can read inside the copy, before and after the plan ran.

Generated scripts must never widen read access to "other". The rehearsal checks it on the booted
copy rather than on the plan's own list of changes: before stage 0 the copy's root lists every path
the plan touches (each path of the ownership manifest, the managed directories, the file fixes,
the override files, pins, credentials, leftovers and drop-ins; everything below them on the same
filesystem; and every parent up to /), then `nobody` (UID and GID 65534, no supplementary groups,
through setpriv from util-linux) tries to read each one and to enter each directory. The same list
is tried again after the last migration stage and after the rollback: a path reached through a
directory nobody may not enter is not readable, and a path that is gone is not either. Symbolic
links and sockets are left out of the list (a daemon binds its socket again with whatever umask
it has); paths made after the listing are not compared.

The scripts run as the copy's root; the comparison is pure (the tests feed it probe output).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from dynmigrate.model.plan import AccountPlan

NOBODY = 65534
LIST_FILE = "/run/dynmigrate-rehearsal-access.list"  # in the copy: its root's, mode 0600
MAX_REPORTED = 50  # widened entries kept per account (then a count of the rest)
VERBS = {"r": "read", "x": "enter"}

# $@: the paths the plan touches. Lists (NUL-separated, sorted, once) each one, its parents and
# everything below it on the same filesystem, without symbolic links and sockets, into LIST_FILE.
LIST_SCRIPT = r"""
umask 077
list=$1; shift
for p in "$@"; do
  q=$p
  while [ -n "$q" ] && [ "$q" != / ]; do q=${q%/*}; printf '%s\0' "${q:-/}"; done
  if [ -e "$p" ] || [ -L "$p" ]; then find "$p" -xdev -print0 2>/dev/null; fi
done | LC_ALL=C sort -zu | while IFS= read -r -d '' p; do
  if [ -L "$p" ] || [ -S "$p" ] || ! [ -e "$p" ]; then continue; fi
  printf '%s\0' "$p"
done >"$list"
"""

# What nobody can do with each listed path: "r" read, "x" enter (a directory), "-" neither;
# printed as "RX PATH\0" for every path of the list, in its order.
PROBE_SCRIPT = r"""
[ -f "$1" ] || { echo "no list of paths at $1" >&2; exit 3; }
exec setpriv --reuid=65534 --regid=65534 --clear-groups -- bash -c '
while IFS= read -r -d "" p; do
  r=-; x=-
  if [ -r "$p" ]; then r=r; fi
  if [ -d "$p" ] && [ -x "$p" ]; then x=x; fi
  printf "%s%s %s\0" "$r" "$x" "$p"
done' <"$1"
"""


def touched_paths(accounts: Iterable[AccountPlan]) -> list[str]:
    """Every path the plans of these accounts change, install or record (their parents are added
    by LIST_SCRIPT; templated directory names, with a %, are no path)."""
    found: set[str] = set()
    for a in accounts:
        found.update(a.manifest_paths)
        found.update(f.path for f in a.file_fixes)
        found.update(c.path for c in a.credentials)
        found.update(p.path for p in a.pins)
        found.update(s.path for s in a.statoverrides)
        found.update(x.path for x in a.leftovers)
        for o in a.overrides:
            found.add(o.target)
            if o.replaces is not None:
                found.add(o.replaces)
        for u in a.units:
            found.add(u.dropin_path)
            found.update(d.path for d in u.directories)
    return sorted(p for p in found if p.startswith("/") and "%" not in p)


def parse_probe(out: str) -> dict[str, str]:
    """PROBE_SCRIPT's output: path -> what nobody can do ("r", "x", both or neither)."""
    access: dict[str, str] = {}
    for record in out.split("\0"):
        flags, sep, path = record.partition(" ")
        if sep and len(flags) == 2:
            access[path] = flags.replace("-", "")
    return access


def widened(before: Mapping[str, str], after: Mapping[str, str]) -> dict[str, str]:
    """Path -> what nobody can do with it now that it could not do before ("r", "x" or "rx"), for
    the paths listed before (a path missing after, as one the probe could not try, is not widened)."""
    out: dict[str, str] = {}
    for path, was in before.items():
        new = "".join(f for f in after.get(path, "") if f not in was)
        if new:
            out[path] = new
    return out


def _related(path: str, top: str) -> bool:
    """path is top, lies below it, or is one of its parents."""
    if path == top or path == "/" or top == "/":
        return True
    return path.startswith(top.rstrip("/") + "/") or top.startswith(path.rstrip("/") + "/")


def related_count(listed: Iterable[str], touched: Sequence[str]) -> int:
    """How many listed paths concern an account (see account_widened)."""
    return sum(1 for path in listed if any(_related(path, t) for t in touched))


def account_widened(touched: Sequence[str], found: Sequence[tuple[str, Mapping[str, str]]]) -> tuple[str, ...]:
    """The widened paths (found: (when, widened()) pairs, in order) that concern one account: a
    path it touches, one below it, or a parent of one; each said as a sentence."""
    out: list[str] = []
    for when, paths in found:
        for path in sorted(paths):
            if any(_related(path, t) for t in touched):
                verbs = " and ".join(VERBS[f] for f in paths[path])
                out.append(f"after the {when}, other users can {verbs} {path}")
    if len(out) > MAX_REPORTED:
        out[MAX_REPORTED:] = [f"(and {len(out) - MAX_REPORTED} more)"]
    return tuple(out)
