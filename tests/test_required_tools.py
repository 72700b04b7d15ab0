"""A check that needs a tool CI installs (shellcheck) is skipped visibly without it, and fails under CI."""

from __future__ import annotations

import pytest

from conftest import require_tool

MISSING = "dynmigrate-test-no-such-tool"


def test_a_missing_tool_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=f"{MISSING} is not installed and CI is set"):
        require_tool(MISSING)


@pytest.mark.parametrize("ci", ["", "0", "false", "no"])
def test_a_missing_tool_skips_outside_ci(monkeypatch: pytest.MonkeyPatch, ci: str) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception, match=f"{MISSING} not installed"):
        require_tool(MISSING)


def test_an_installed_tool_is_required_silently(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    require_tool("sh")
