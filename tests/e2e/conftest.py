"""Fixtures for the e2e tests: cached Debian roots and a freshly booted container per test.

* ``suite`` (session, parametrised): the Debian suite, ``bookworm`` (systemd 252) or ``trixie``
  (systemd 257). Every test that uses a root runs once per suite, its id names the suite
  (``test_x[trixie]``). ``@pytest.mark.suites("bookworm")`` limits a test to the suites named;
  DYNMIGRATE_E2E_SUITES=trixie limits the whole run.
* ``e2e_root`` (session): path of the cached root of that suite (built on first use).
* ``container`` (function): a fresh copy of that root, booted; powered off at teardown.
* ``make_container`` (function): factory for more containers, or for preparing the root copy
  before boot; everything it made is powered off at teardown.

Outside CI a machine that cannot run nspawn containers skips these tests with the reason; with
CI set (e.g. CI=1) the same problems fail them.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from e2e.dm import check_access
from e2e.harness import (
    Container,
    ContainerFactory,
    E2EUnavailable,
    build_root,
    check_prerequisites,
    ci_mode,
    default_spec,
    selected_suites,
)

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Hooks in a directory conftest see every collected item: mark only the ones below here.
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.e2e)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "suites(*names): run this e2e test only on these Debian suites")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "suite" not in metafunc.fixturenames:
        return
    suites = selected_suites()
    marker = metafunc.definition.get_closest_marker("suites")
    if marker is not None:
        suites = tuple(s for s in suites if s in marker.args)
    # session scope: one cached root per suite, shared by every test of that suite
    metafunc.parametrize("suite", suites, scope="session")


def unavailable(reason: str) -> NoReturn:
    """Skip (outside CI) or fail (CI set) because this machine cannot run the e2e tests."""
    if ci_mode():
        pytest.fail(f"e2e tests cannot run, and CI is set, so this fails: {reason}", pytrace=False)
    print(f"\ne2e tests skipped: {reason}", file=sys.stderr)
    pytest.skip(f"e2e unavailable: {reason}")


@pytest.fixture(scope="session")
def e2e_root(suite: str) -> Path:
    """The cached, complete Debian root of the suite (never modify it: boot a copy)."""
    try:
        check_prerequisites()
        return build_root(default_spec(suite))
    except E2EUnavailable as exc:
        reason = str(exc)
    unavailable(reason)  # outside the except block: no chained traceback in the report


@pytest.fixture
def make_container(e2e_root: Path, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[ContainerFactory]:
    """make_container(prepare=None, boot=True) -> Container, any number of times per test."""
    factory = ContainerFactory(e2e_root, tmp_path, request.node.name)
    try:
        yield factory
        # every migration a test ran: nothing nobody could not read before the plan became readable
        assert check_access(factory.made) == [], "read access widened (what nobody can read or enter now)"
    finally:
        factory.close()


@pytest.fixture
def container(make_container: ContainerFactory) -> Container:
    """A fresh copy of the cached root, booted to running/degraded; powered off at teardown."""
    return make_container()
