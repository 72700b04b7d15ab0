"""Protocol probes that the corpus runner copies into a booted root and runs there.

Plain stdlib so that it runs on the root's own python3. Each probe exits 0 when the daemon answered
as its configuration says it must, and 1 with one line on stderr otherwise. The probes check
behaviour that depends on the daemon's configuration (a zone it must serve, a password it must
require, data written before read back), so a daemon running on built-in defaults fails them.

    probe.py http URL [--expect TEXT] [--status N] [--data BODY] [--header K:V]
    probe.py tcp HOST PORT [--send TEXT] --expect TEXT
    probe.py udp HOST PORT --send-hex HEX [--expect-len N]
    probe.py dns HOST PORT NAME --expect ADDRESS
    probe.py stun HOST PORT
    probe.py tftp HOST PORT FILE --expect TEXT
    probe.py ldap HOST PORT DN          (an anonymous base search: the entry DN must exist)
    probe.py imap HOST PORT --user U --password P --expect TEXT [--greeting TEXT] [--append TEXT]
                                        (LOGIN, SELECT INBOX, a message holding TEXT must be there;
                                        --append: APPEND a message holding TEXT and read it back)
    probe.py deploy DIR URL [--within SECONDS]   (a fresh web archive dropped into DIR is served)
    probe.py ra IFACE PREFIX            (a router solicitation on IFACE: a router advertisement
                                         must come back on it with PREFIX, 2001:db8::/64)

Every probe takes --wait SECONDS (before the kind): it is retried until it passes or that time is
up, for daemons that take a while to answer after systemd calls them started (a JVM, a TSDB);
--timeout SECONDS is how long one answer may take (5 s).
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import imaplib
import os
import random
import signal
import socket
import struct
import sys
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from typing import Any

TIMEOUT = 5.0


_QUIET = False


def fail(message: str) -> int:
    if not _QUIET:
        print(f"probe failed: {message}", file=sys.stderr)
    return 1


def _get(
    url: str, data: bytes | None = None, headers: dict[str, str] | None = None, method: str | None = None
) -> tuple[int, str]:
    """The status and body of one HTTP request (OSError when there is no answer)."""
    request = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # loopback only
            return response.status, response.read(1 << 20).decode("utf-8", "replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read(1 << 20).decode("utf-8", "replace")


def http(args: argparse.Namespace) -> int:
    headers = dict(h.split(":", 1) for h in args.header)
    data = args.data.encode() if args.data is not None else None
    try:
        status, body = _get(args.url, data, headers, args.method)
    except OSError as err:
        return fail(f"{args.url}: {err}")
    if status != args.status:
        return fail(f"{args.url}: status {status}, expected {args.status}")
    if args.expect and args.expect not in body:
        return fail(f"{args.url}: {args.expect!r} not in the answer ({body[:200]!r})")
    print(f"{args.url}: {status}")
    return 0


def deploy(args: argparse.Namespace) -> int:
    """Deploys a web archive of a fresh name into DIR as an admin would (written aside, renamed into
    place), waits until URL/NAME/index.txt serves the name, and removes the archive again (the
    server then undeploys it). The daemon must be able to unpack into DIR: a copy it can only read
    from fails this probe. It runs once per call (each run deploys a new name): --within is its wait.
    """
    name = f"probe-{os.getpid()}-{random.randrange(1 << 32):08x}"
    part, war = os.path.join(args.dir, f".{name}.part"), os.path.join(args.dir, f"{name}.war")
    url = f"{args.url.rstrip('/')}/{name}/index.txt"
    deadline, last = time.monotonic() + args.within, "no answer"
    # a health check's timeout ends it with SIGTERM: the archive is removed all the same
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    served = False
    try:
        try:
            with zipfile.ZipFile(part, "x") as archive:
                archive.writestr("index.txt", f"{name}\n")
            os.chmod(part, 0o644)  # as an admin's copy: readable whatever umask this probe runs with
            os.rename(part, war)
        except OSError as err:
            return fail(f"{war}: {err}")
        while not served and time.monotonic() < deadline:
            served, last = _serves(url, name)
            time.sleep(0 if served else 1)
        if not served:
            return fail(f"{url}: {war} not deployed within {args.within:g} s ({last})")
        print(f"{url}: deployed and served")
        return 0
    finally:
        for path in (part, war):  # only what this run wrote, by its own fresh name
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        # the server undeploys it at its next scan and removes what it unpacked; wait for that a
        # little, so that a restart right after does not find it unpacked without its archive
        until = time.monotonic() + (15 if served else 0)
        while time.monotonic() < until and _serves(url, name)[0]:
            time.sleep(1)


def _serves(url: str, text: str) -> tuple[bool, str]:
    try:
        status, body = _get(url)
    except OSError as err:
        return False, str(err)
    return status == 200 and text in body, f"status {status}"


def _unescape(text: str) -> bytes:
    """The bytes a command-line argument with C escapes (\\r, \\n, \\xNN) stands for."""
    return codecs.decode(text, "unicode_escape").encode("latin-1")


def tcp(args: argparse.Namespace) -> int:
    try:
        with socket.create_connection((args.host, args.port), timeout=TIMEOUT) as sock:
            if args.send is not None:
                sock.sendall(_unescape(args.send))
            expect = _unescape(args.expect)
            got = b""
            while expect not in got and len(got) < 1 << 16:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                got += chunk
    except OSError as err:
        return fail(f"{args.host}:{args.port}: {err}")
    if expect not in got:
        return fail(f"{args.host}:{args.port}: {args.expect!r} not in {got[:200]!r}")
    print(f"{args.host}:{args.port}: answered")
    return 0


def _udp(host: str, port: int, payload: bytes) -> bytes:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(TIMEOUT)
        sock.sendto(payload, (host, port))
        return sock.recvfrom(65535)[0]


def udp(args: argparse.Namespace) -> int:
    try:
        got = _udp(args.host, args.port, bytes.fromhex(args.send_hex))
    except OSError as err:
        return fail(f"{args.host}:{args.port}: {err}")
    if len(got) < args.expect_len:
        return fail(f"{args.host}:{args.port}: {len(got)} bytes, expected at least {args.expect_len}")
    print(f"{args.host}:{args.port}: {len(got)} bytes")
    return 0


def dns(args: argparse.Namespace) -> int:
    ident = random.randrange(1 << 16)
    question = b"".join(bytes([len(label)]) + label.encode() for label in args.name.rstrip(".").split("."))
    query = struct.pack(">HHHHHH", ident, 0x0100, 1, 0, 0, 0) + question + b"\0" + struct.pack(">HH", 1, 1)
    try:
        answer = _udp(args.host, args.port, query)
    except OSError as err:
        return fail(f"{args.name}@{args.host}:{args.port}: {err}")
    rcode = answer[3] & 0x0F if len(answer) > 3 else -1
    wanted = socket.inet_aton(args.expect)
    if rcode != 0 or wanted not in answer[12:]:
        return fail(f"{args.name}@{args.host}:{args.port}: rcode {rcode}, {args.expect} not in the answer")
    print(f"{args.name} -> {args.expect}")
    return 0


def stun(args: argparse.Namespace) -> int:
    transaction = os.urandom(12)
    request = struct.pack(">HHI", 0x0001, 0, 0x2112A442) + transaction
    try:
        answer = _udp(args.host, args.port, request)
    except OSError as err:
        return fail(f"{args.host}:{args.port}: {err}")
    if len(answer) < 20 or answer[:2] != b"\x01\x01" or answer[8:20] != transaction:
        return fail(f"{args.host}:{args.port}: not a STUN binding success response")
    print(f"{args.host}:{args.port}: STUN binding success")
    return 0


def tftp(args: argparse.Namespace) -> int:
    request = b"\0\1" + args.file.encode() + b"\0octet\0"
    try:
        answer = _udp(args.host, args.port, request)
    except OSError as err:
        return fail(f"{args.file}@{args.host}:{args.port}: {err}")
    if answer[:2] != b"\0\3" or args.expect.encode() not in answer[4:]:
        return fail(f"{args.file}@{args.host}:{args.port}: {answer[:80]!r}")
    print(f"{args.file}: read")
    return 0


def _ra_prefixes(packet: bytes) -> set[str]:
    """The prefixes (ADDRESS/LENGTH) of a router advertisement's prefix information options."""
    found: set[str] = set()
    if len(packet) < 16 or packet[0] != 134:  # ICMPv6 router advertisement
        return found
    at = 16
    while at + 2 <= len(packet) and packet[at + 1]:
        kind, size = packet[at], packet[at + 1] * 8
        if kind == 3 and size == 32 and at + 32 <= len(packet):  # prefix information
            found.add(f"{socket.inet_ntop(socket.AF_INET6, packet[at + 16 : at + 32])}/{packet[at + 2]}")
        at += size
    return found


def ra(args: argparse.Namespace) -> int:
    address, _, length = args.prefix.partition("/")
    try:
        wanted = f"{socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, address))}/{int(length)}"
        index = socket.if_nametoindex(args.iface)
    except (OSError, ValueError) as err:
        return fail(f"{args.iface} {args.prefix}: {err}")
    seen: set[str] = set()
    with socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6) as sock:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, args.iface.encode())
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
            # a router solicitation to all routers, so that the answer need not wait for the next
            # periodic advertisement
            sock.sendto(struct.pack(">BBHI", 133, 0, 0, 0), ("ff02::2", 0, 0, index))
            deadline = time.monotonic() + TIMEOUT
            while time.monotonic() < deadline:
                sock.settimeout(max(0.1, deadline - time.monotonic()))
                seen |= _ra_prefixes(sock.recvfrom(65535)[0])
                if wanted in seen:
                    print(f"{args.iface}: router advertisement for {wanted}")
                    return 0
        except OSError as err:
            return fail(f"{args.iface}: {err}; prefixes seen: {', '.join(sorted(seen)) or 'none'}")
    return fail(
        f"{args.iface}: no router advertisement for {wanted}; prefixes seen: {', '.join(sorted(seen)) or 'none'}"
    )


def _ber(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    raw = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(raw)]) + raw + content


def ldap(args: argparse.Namespace) -> int:
    """An anonymous search with scope base for DN: the server must return that entry."""
    search = _ber(
        0x63,
        _ber(0x04, args.dn.encode())
        + _ber(0x0A, b"\0")  # scope: base object
        + _ber(0x0A, b"\0")  # never dereference aliases
        + _ber(0x02, b"\0")  # no size limit
        + _ber(0x02, b"\0")  # no time limit
        + _ber(0x01, b"\0")  # typesOnly: false
        + _ber(0x87, b"objectClass")  # filter: (objectClass=*)
        + _ber(0x30, b""),  # every attribute
    )
    request = _ber(0x30, _ber(0x02, b"\1") + search)
    got = b""
    try:
        with socket.create_connection((args.host, args.port), timeout=TIMEOUT) as sock:
            sock.sendall(request)
            while b"\x65" not in got[2:] and len(got) < 1 << 16:  # searchResDone ends the answer
                chunk = sock.recv(4096)
                if not chunk:
                    break
                got += chunk
    except OSError as err:
        return fail(f"{args.host}:{args.port}: {err}")
    if b"\x64" not in got or args.dn.encode() not in got:
        return fail(f"{args.host}:{args.port}: no entry {args.dn} in {got[:120]!r}")
    print(f"{args.dn}: found")
    return 0


def _imap_text(data: object) -> str:
    """A server's answer (imaplib gives lists of bytes and tuples of bytes) as one line of text."""
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    if isinstance(data, (list, tuple)):
        return " ".join(_imap_text(item) for item in data if item is not None)
    return str(data)


def _imap_messages(conn: imaplib.IMAP4) -> bytes:
    """Every message of the selected mailbox, headers and body, without setting \\Seen."""
    typ, data = conn.fetch("1:*", "(BODY.PEEK[])")
    if typ != "OK":
        raise imaplib.IMAP4.error(f"FETCH: {_imap_text(data)}")
    return b"".join(part[1] for part in data if isinstance(part, tuple))


def _imap_session(conn: imaplib.IMAP4, args: argparse.Namespace) -> str:
    """Log in, find the expected text in INBOX, append and read back; '' or why it failed."""
    if args.greeting and args.greeting.encode() not in conn.welcome:
        return f"greeting {_imap_text(conn.welcome)!r} lacks {args.greeting!r}"
    conn.login(args.user, args.password)
    typ, data = conn.select("INBOX")
    if typ != "OK":
        return f"SELECT INBOX: {_imap_text(data)}"
    count = int(data[0] or 0)
    if not count or args.expect.encode() not in _imap_messages(conn):
        return f"no message holding {args.expect!r} in INBOX of {args.user} ({count} messages)"
    if args.append is None:
        return ""
    token = f"{args.append} {os.getpid()}.{time.time_ns()}"
    message = f"From: probe@localhost\r\nSubject: {token}\r\n\r\n{token}\r\n".encode()
    typ, answer = conn.append("INBOX", None, None, message)
    if typ != "OK":
        return f"APPEND: {_imap_text(answer)}"
    conn.select("INBOX")  # see the new message
    if token.encode() not in _imap_messages(conn):
        return f"the appended message {token!r} is not in INBOX"
    return ""


def imap(args: argparse.Namespace) -> int:
    """An IMAP user's session: LOGIN (plaintext: dovecot takes loopback as secured), read, APPEND."""
    where = f"{args.user}@{args.host}:{args.port}"
    try:
        with imaplib.IMAP4(args.host, args.port, timeout=TIMEOUT) as conn:
            why = _imap_session(conn, args)
    except imaplib.IMAP4.readonly as err:  # the server opened INBOX, but only for reading
        return fail(f"{where}: INBOX is read-only ({err})")
    except imaplib.IMAP4.error as err:  # a NO or BAD answer, or the server hung up
        return fail(f"{where}: {_imap_text(err.args[0] if err.args else err)}")
    except OSError as err:
        return fail(f"{where}: {err}")
    if why:
        return fail(f"{where}: {why}")
    print(f"{where}: read {args.expect!r}" + (f", appended {args.append!r}" if args.append else ""))
    return 0


_Arg = tuple[str, dict[str, Any]]
_HOST_PORT: tuple[_Arg, ...] = (("host", {}), ("port", {"type": int}))
# each probe: its function and its arguments (add_argument's name and keywords)
PROBES: dict[str, tuple[Callable[[argparse.Namespace], int], tuple[_Arg, ...]]] = {
    "http": (
        http,
        (
            ("url", {}),
            ("--expect", {"default": ""}),
            ("--status", {"type": int, "default": 200}),
            ("--data", {}),
            ("--method", {}),
            ("--header", {"action": "append", "default": []}),
        ),
    ),
    "tcp": (tcp, (*_HOST_PORT, ("--send", {}), ("--expect", {"required": True}))),
    "udp": (udp, (*_HOST_PORT, ("--send-hex", {"required": True}), ("--expect-len", {"type": int, "default": 1}))),
    "dns": (dns, (*_HOST_PORT, ("name", {}), ("--expect", {"required": True}))),
    "stun": (stun, _HOST_PORT),
    "tftp": (tftp, (*_HOST_PORT, ("file", {}), ("--expect", {"required": True}))),
    "ldap": (ldap, (*_HOST_PORT, ("dn", {}))),
    "imap": (
        imap,
        (
            *_HOST_PORT,
            ("--user", {"required": True}),
            ("--password", {"required": True}),
            ("--expect", {"required": True}),
            ("--greeting", {"default": ""}),
            ("--append", {}),
        ),
    ),
    "deploy": (deploy, (("dir", {}), ("url", {}), ("--within", {"type": float, "default": 120.0}))),
    "ra": (ra, (("iface", {}), ("prefix", {}))),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="probe.py")
    parser.add_argument("--wait", type=float, default=0.0, metavar="SECONDS")
    parser.add_argument("--timeout", type=float, default=TIMEOUT, metavar="SECONDS", help="for one answer")
    sub = parser.add_subparsers(dest="kind", required=True)
    for kind, (run, arguments) in PROBES.items():
        p = sub.add_parser(kind)
        for name, options in arguments:
            p.add_argument(name, **options)
        p.set_defaults(run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    global _QUIET, TIMEOUT
    args = _parser().parse_args(argv)
    TIMEOUT = args.timeout
    deadline = time.monotonic() + args.wait
    while True:
        _QUIET = time.monotonic() + 1 < deadline
        result: int = args.run(args)
        if result == 0 or not _QUIET:
            return result
        time.sleep(1)


if __name__ == "__main__":
    sys.exit(main())
