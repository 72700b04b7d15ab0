"""Fixtures for the e2e tests: a cached Debian root and a freshly booted container per test.

* ``e2e_root`` (session): path of the cached root (built on first use).
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

from e2e.harness import (
    Container,
    ContainerFactory,
    E2EUnavailable,
    build_root,
    check_prerequisites,
    ci_mode,
)

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Hooks in a directory conftest see every collected item: mark only the ones below here.
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.e2e)


def unavailable(reason: str) -> NoReturn:
    """Skip (outside CI) or fail (CI set) because this machine cannot run the e2e tests."""
    if ci_mode():
        pytest.fail(f"e2e tests cannot run, and CI is set, so this fails: {reason}", pytrace=False)
    print(f"\ne2e tests skipped: {reason}", file=sys.stderr)
    pytest.skip(f"e2e unavailable: {reason}")


@pytest.fixture(scope="session")
def e2e_root() -> Path:
    """The cached, complete Debian root (never modify it: boot a copy)."""
    try:
        check_prerequisites()
        return build_root()
    except E2EUnavailable as exc:
        reason = str(exc)
    unavailable(reason)  # outside the except block: no chained traceback in the report


@pytest.fixture
def make_container(e2e_root: Path, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[ContainerFactory]:
    """make_container(prepare=None, boot=True) -> Container, any number of times per test."""
    factory = ContainerFactory(e2e_root, tmp_path, request.node.name)
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
def container(make_container: ContainerFactory) -> Container:
    """A fresh copy of the cached root, booted to running/degraded; powered off at teardown."""
    return make_container()
