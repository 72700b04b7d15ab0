"""The rules' place in the direction of the stages.

lint-imports (contracts in pyproject.toml, run by .ci/run) checks the package. The rules in rules/
are loaded by path, outside any package import-linter can see, so their imports are checked here:
a rule sees the values (model/), the rule API (engine/api.py) and the named queries (graph/queries.py),
never the reader of the disk (collect/) nor a later stage.
"""

from __future__ import annotations

import ast

from conftest import REPO

ALLOWED = ("dynmigrate.model", "dynmigrate.engine.api", "dynmigrate.graph.queries")


def imports_of(source: str) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
    return out


def test_rules_import_only_values_the_rule_api_and_queries() -> None:
    wrong = [
        f"{path.relative_to(REPO)}:{line}: {module}"
        for path in sorted((REPO / "rules").glob("DM*/rule.py"))
        for line, module in imports_of(path.read_text(encoding="utf-8"))
        if module.split(".")[0] == "dynmigrate" and not any(module == a or module.startswith(f"{a}.") for a in ALLOWED)
    ]
    assert wrong == []


def test_the_import_check_sees_a_rule_reaching_into_collect() -> None:
    source = "from dynmigrate.collect.rootfs import rel\nimport dynmigrate.plan.planner\nfrom .x import y\n"
    assert imports_of(source) == [(1, "dynmigrate.collect.rootfs"), (2, "dynmigrate.plan.planner")]
