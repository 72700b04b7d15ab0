"""Node and edge kinds of the ownership graph."""

from __future__ import annotations

from enum import StrEnum


class NodeKind(StrEnum):
    ACCOUNT = "account"
    GROUP = "group"
    UNIT = "unit"
    PATH = "path"
    REFERENCE = "reference"
    PACKAGE = "package"
    UID = "uid"  # a numeric owner no account has (files of a deleted account)


class EdgeKind(StrEnum):
    RUNS_AS = "runs-as"  # unit -> account / group
    MEMBER_OF = "member-of"  # account -> group
    OWNS = "owns"  # account / group / uid -> path
    DECLARES_DIRECTORY = "declares-directory"  # unit -> path (StateDirectory= and friends)
    WRITES = "writes"  # unit -> path (ReadWritePaths=, PIDFile=, WorkingDirectory=)
    REFERENCES = "references"  # reference -> account / group
    SHIPS = "ships"  # package -> unit


class How(StrEnum):
    """How a unit was linked to the account it runs as (issue: units without User=)."""

    USER_DIRECTIVE = "User="
    GROUP_DIRECTIVE = "Group="
    EXEC_ARGUMENT = "exec-argument"
    WRAPPER_SCRIPT = "wrapper-script"
    DAEMON_CONFIG = "daemon-config"
    PACKAGE = "package"
    DIRECTORY_OWNERSHIP = "directory-ownership"
    SOCKET = "socket"


def node_id(kind: NodeKind, name: str) -> str:
    return f"{kind.value}:{name}"
