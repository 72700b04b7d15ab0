"""What is known about particular daemons, from their sources: one place that rules and the plan share."""

from __future__ import annotations

from collections.abc import Sequence

# Daemons that keep their state in the configuration file named on their command line, rewriting
# it while they run, so that the file and its directory must stay writable to them:
# redis-sentinel (or redis-server --sentinel): sentinel.c's sentinelCheckConfigFile() exits with
# "Sentinel config file ... is not writable" when it is not, and the state (its id, epochs, the
# replicas and sentinels it found) is saved by a config rewrite, which writes a temporary file
# beside it and renames it over the file (config.c, rewriteConfigOverwriteFile()).
STATE_CONFIG_DAEMONS = {
    "redis-sentinel": "redis-sentinel",
    "redis-server": "redis-server --sentinel",
}


def state_config(argv: Sequence[str]) -> str | None:
    """The configuration file the daemon of this command line rewrites as its state, or None.

    It is the first argument that is not an option (redis reads its config file from there).
    """
    if not argv:
        return None
    program = argv[0].rsplit("/", 1)[-1]
    if program not in STATE_CONFIG_DAEMONS or (program == "redis-server" and "--sentinel" not in argv):
        return None
    return next((a for a in argv[1:] if not a.startswith("-")), None)
