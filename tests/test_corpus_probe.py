"""The corpus's imap probe (bench/corpus/probe.py) against a small IMAP server in a thread."""

from __future__ import annotations

import re
import socket
import socketserver
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench" / "corpus"))

import probe


class _Mailbox:
    def __init__(self, messages: list[bytes], password: str = "pw", append_answer: str = "OK") -> None:
        self.messages = messages
        self.password = password
        self.append_answer = append_answer
        self.read_only = False


class _Handler(socketserver.StreamRequestHandler):
    """Just enough IMAP4rev1 for imaplib: CAPABILITY, LOGIN, SELECT, FETCH 1:*, APPEND, LOGOUT."""

    mailbox: _Mailbox
    disable_nagle_algorithm = True  # each line is its own small write: no waiting for a delayed ACK

    def say(self, line: bytes) -> None:
        self.wfile.write(line + b"\r\n")

    def handle(self) -> None:
        self.say(b"* OK [CAPABILITY IMAP4rev1] corpus-probe ready")
        while line := self.rfile.readline().rstrip(b"\r\n"):
            tag, command, *rest = line.split(b" ", 2)
            self.answer(tag, command.upper(), rest[0] if rest else b"")
            if command.upper() == b"LOGOUT":
                return

    def answer(self, tag: bytes, command: bytes, rest: bytes) -> None:
        box = self.mailbox
        if command == b"CAPABILITY":
            self.say(b"* CAPABILITY IMAP4rev1")
        elif command == b"LOGIN" and rest.split(b" ")[1].strip(b'"') != box.password.encode():
            self.say(tag + b" NO [AUTHENTICATIONFAILED] Authentication failed.")
            return
        elif command == b"SELECT":
            self.say(b"* %d EXISTS" % len(box.messages))
            if box.read_only:
                self.say(tag + b" OK [READ-ONLY] Select completed")
                return
        elif command == b"FETCH":
            for n, message in enumerate(box.messages, 1):
                self.wfile.write(b"* %d FETCH (BODY[] {%d}\r\n%s)\r\n" % (n, len(message), message))
        elif command == b"APPEND":
            size = int(re.findall(rb"\{(\d+)\}$", rest)[0])
            self.say(b"+ go on")
            message = self.rfile.read(size)
            self.rfile.readline()
            if box.append_answer != "OK":
                self.say(tag + b" " + box.append_answer.encode())
                return
            box.messages.append(message)
        elif command == b"LOGOUT":
            self.say(b"* BYE")
        self.say(tag + b" OK done")


@pytest.fixture
def server() -> Iterator[tuple[int, _Mailbox]]:
    mailbox = _Mailbox([b"Subject: corpus\r\n\r\nwritten-before the migration\r\n"])
    handler = type("Handler", (_Handler,), {"mailbox": mailbox})
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler) as srv:
        # shutdown() waits for the loop's next poll: the default half second was most of each test
        thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
        thread.start()
        yield srv.server_address[1], mailbox
        srv.shutdown()


def _imap(port: int, *extra: str) -> list[str]:
    return ["imap", "127.0.0.1", str(port), "--user", "u", "--password", "pw", *extra]


def test_imap_needs_a_user_a_password_and_the_text_to_find(capsys: pytest.CaptureFixture[str]) -> None:
    for missing in ("--user", "--password", "--expect"):
        argv = _imap(1, "--expect", "x")
        at = argv.index(missing)
        with pytest.raises(SystemExit):
            probe.main(argv[:at] + argv[at + 2 :])
        assert f"the following arguments are required: {missing}" in capsys.readouterr().err


def test_imap_reads_the_message_back_and_appends_one(
    server: tuple[int, _Mailbox], capsys: pytest.CaptureFixture[str]
) -> None:
    port, mailbox = server
    argv = _imap(port, "--greeting", "corpus-probe ready", "--expect", "written-before", "--append", "written-after")
    assert probe.main(argv) == 0
    assert len(mailbox.messages) == 2
    assert b"written-after" in mailbox.messages[1]
    assert capsys.readouterr().out == f"u@127.0.0.1:{port}: read 'written-before', appended 'written-after'\n"


@pytest.mark.parametrize(
    ("extra", "mailbox_change", "why"),
    [
        (("--greeting", "other"), {}, "greeting '* OK [CAPABILITY IMAP4rev1] corpus-probe ready' lacks 'other'"),
        ((), {"password": "secret"}, "[AUTHENTICATIONFAILED] Authentication failed."),
        ((), {"messages": []}, "no message holding 'written-before' in INBOX of u (0 messages)"),
        ((), {"read_only": True}, "INBOX is read-only"),
        (
            ("--append", "new"),
            {"append_answer": "NO [SERVERBUG] Read-only file system"},
            "APPEND: [SERVERBUG] Read-only",
        ),
    ],
)
def test_imap_says_which_step_failed(
    server: tuple[int, _Mailbox],
    capsys: pytest.CaptureFixture[str],
    extra: tuple[str, ...],
    mailbox_change: dict[str, object],
    why: str,
) -> None:
    port, mailbox = server
    vars(mailbox).update(mailbox_change)
    assert probe.main(_imap(port, "--expect", "written-before", *extra)) == 1
    assert f"probe failed: u@127.0.0.1:{port}: {why}" in capsys.readouterr().err


def test_imap_without_a_server_fails_with_the_socket_error(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: refused
        assert probe.main(_imap(port, "--expect", "x")) == 1
    assert "Connection refused" in capsys.readouterr().err
