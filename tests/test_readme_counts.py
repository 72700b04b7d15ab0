"""The counts README.md quotes in "Robustness", and the number of tests in the quick loop, come from
the test run (tests/conftest.py): after a whole run of tests/robustness/, both tiers, in one pytest
run or in two in a row (CI's `pytest -m 'not e2e'` then `pytest -m e2e`, through pytest's cache),
and after a whole `pytest -m 'not e2e'` for the quick loop, they are compared with what was counted,
and a difference fails the run with the fix (`pytest --update-goldens` rewrites them). This test
keeps every quoted count findable, once, so that the comparison can never silently stop."""

from __future__ import annotations

from conftest import README_COUNTS, REPO


def test_every_count_the_run_checks_is_quoted_once() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    found = {what: len(pattern.findall(text)) for pattern, what in README_COUNTS}
    assert found == dict.fromkeys(found, 1)
    assert set(found) == {
        "hostile cases",
        "generated inputs",
        "readers and writers",
        "round-tripped unit files",
        "bounded-work worst cases",
        "generated shell-word lines",
        "quick-loop tests",
    }
    assert " tests, e2e on both suites included" not in text  # a test count nobody checked (it said 576)
