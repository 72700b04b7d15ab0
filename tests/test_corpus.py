"""The corpus definitions (bench/corpus/daemons.ini) and the pure part of `corpus.py check`."""

from __future__ import annotations

import socket
import struct
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench" / "corpus"))

import corpus_check
import probe
from corpus_check import CheckResult, Status, Step

import corpus


def test_every_definition_loads_and_at_most_a_tenth_is_broken() -> None:
    daemons = corpus.load_daemons()
    for suite in corpus.SUITES:
        on_suite = [d for d in daemons if suite in d.suites]
        broken = [d.name for d in on_suite if d.broken]
        assert len(on_suite) >= 40, suite
        assert len(broken) * 10 <= len(on_suite), (suite, broken)
    for d in daemons:
        assert d.setup, d.name
        assert d.probe, d.name
        assert d.unit.endswith((".service", ".socket")), d.name


def test_a_definition_lacking_a_key_names_the_file_and_the_section(tmp_path: Path) -> None:
    ini = tmp_path / "daemons.ini"
    ini.write_text("[x]\npackage = x\nunit = x.service\naccount = x\nroot = main\nsuites = trixie\nsetup = true\n")
    with pytest.raises(corpus.CorpusError) as err:
        corpus.load_daemons(ini)
    assert str(err.value) == f"{ini}: [x] lacks probe"


def test_a_broken_reason_and_continued_lines_are_read_as_one_line(tmp_path: Path) -> None:
    ini = tmp_path / "daemons.ini"
    ini.write_text(
        "[x]\npackage = xd\nunit = x.service\naccount = _x\nroot = main\nsuites = bookworm trixie\n"
        "setup = a\n  && b\nprobe = $PROBE tcp 127.0.0.1 1 --expect y\nbroken = needs\n  a serial port\n"
    )
    assert corpus.load_daemons(ini) == (
        corpus.Daemon(
            name="x",
            package="xd",
            unit="x.service",
            account="_x",
            group="main",
            suites=("bookworm", "trixie"),
            setup="a && b",
            probe="$PROBE tcp 127.0.0.1 1 --expect y",
            broken="needs a serial port",
        ),
    )


def test_probe_placeholder_is_spelled_out() -> None:
    assert corpus.shell_line("$PROBE dns 127.0.0.1 53 a.test --expect 1.2.3.4 && true") == (
        "python3 /usr/local/lib/dynmigrate-corpus/probe.py dns 127.0.0.1 53 a.test --expect 1.2.3.4 && true"
    )


def test_enabled_units_are_those_the_build_recorded_for_the_package(tmp_path: Path) -> None:
    assert corpus.enabled_units(tmp_path, "gpsd") == []
    record = tmp_path / corpus.ENABLED_RECORD
    record.parent.mkdir(parents=True)
    record.write_text("gpsd gpsd.socket\nredis-sentinel redis-sentinel.service\ngpsd gpsd.service\n")
    assert corpus.enabled_units(tmp_path, "gpsd") == ["gpsd.socket", "gpsd.service"]


def test_the_line_that_says_why_a_step_failed() -> None:
    assert Step(1, "").first_error() == "exit 1"
    assert Step(1, "starting\nprobe failed: 127.0.0.1:53: timed out\nbye\n").first_error() == (
        "probe failed: 127.0.0.1:53: timed out"
    )
    assert Step(2, "one\ntwo\n").first_error() == "two"


OK = Step(0, "")
BAD = Step(1, "probe failed: 127.0.0.1:25: '220' not in b''")


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (CheckResult("a", "trixie", "", before=BAD, setup=OK, probe=OK), (Status.OK, "")),
        (
            CheckResult("a", "trixie", "", before=OK, setup=OK, probe=OK),
            (Status.WEAK, "the probe also passes before the setup, on built-in defaults"),
        ),
        (
            CheckResult("a", "trixie", "", before=BAD, setup=OK, probe=BAD),
            (Status.FAIL, "probe: probe failed: 127.0.0.1:25: '220' not in b''"),
        ),
        (
            CheckResult("a", "trixie", "", before=BAD, setup=Step(3, "sed: no such file")),
            (Status.FAIL, "setup: sed: no such file"),
        ),
        (CheckResult("a", "trixie", "", boot_error="maintenance"), (Status.FAIL, "boot: maintenance")),
        (
            CheckResult("a", "trixie", "needs /dev/tpm0", before=BAD, setup=OK, probe=BAD),
            (Status.BROKEN, "needs /dev/tpm0"),
        ),
        (
            CheckResult("a", "trixie", "needs /dev/tpm0", before=BAD, setup=OK, probe=OK),
            (Status.UNBROKEN, "marked broken (needs /dev/tpm0) but the setup and probe work"),
        ),
    ],
)
def test_classify(result: CheckResult, expected: tuple[Status, str]) -> None:
    assert corpus_check.classify(result) == expected


def test_the_table() -> None:
    results = [
        CheckResult("caddy", "bookworm", "", before=BAD, setup=OK, probe=OK, state="active"),
        CheckResult("postfix", "bookworm", "", before=OK, setup=OK, probe=BAD, state="failed"),
        CheckResult("prosody", "bookworm", "", before=OK, setup=OK, probe=OK, state="active"),
        CheckResult("tpm2-abrmd", "bookworm", "no TPM | device", before=BAD, setup=OK, probe=BAD, state="failed"),
    ]
    assert corpus_check.render_table(results) == (
        "| daemon | suite | before setup | setup | probe | unit | status | note |\n"
        "|---|---|---|---|---|---|---|---|\n"
        "| caddy | bookworm | fails | ok | ok | active | ok |  |\n"
        "| postfix | bookworm | passes | ok | exit 1 | failed | FAIL |"
        " probe: probe failed: 127.0.0.1:25: '220' not in b'' |\n"
        "| prosody | bookworm | passes | ok | ok | active | weak |"
        " the probe also passes before the setup, on built-in defaults |\n"
        "| tpm2-abrmd | bookworm | fails | ok | exit 1 | failed | broken | no TPM \\| device |\n"
        "\n"
        "4 daemons: 1 ok, 1 weak, 1 FAIL, 1 broken\n"
    )
    assert corpus_check.failed(results)
    assert not corpus_check.failed([results[0], results[3]])


def _prefix_option(prefix: str, length: int) -> bytes:
    return struct.pack(">BBBBIII", 3, 4, length, 0xC0, 86400, 14400, 0) + socket.inet_pton(socket.AF_INET6, prefix)


def test_the_ra_probe_reads_the_prefixes_of_a_router_advertisement_and_nothing_else() -> None:
    header = bytes([134, 0, 0, 0, 64, 0, 0, 12]) + bytes(8)
    mtu = bytes([5, 1, 0, 0, 0, 0, 5, 220])
    advert = header + mtu + _prefix_option("2001:db8:57::", 64) + _prefix_option("2001:db8:58::", 56)
    assert probe._ra_prefixes(advert) == {"2001:db8:57::/64", "2001:db8:58::/56"}
    solicitation = bytes([133, 0, 0, 0]) + bytes(4)
    assert probe._ra_prefixes(solicitation) == set()
    # a zero-length option ends the walk instead of looping
    assert probe._ra_prefixes(header + bytes([3, 0]) + _prefix_option("2001:db8:57::", 64)) == set()
