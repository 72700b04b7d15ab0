"""Fail on a function longer than MAX_LINES lines or with more than MAX_STATEMENTS statements,
and on a CLI command longer than MAX_COMMAND_LINES lines.

Both limits, so that neither very long lines nor a blank-free wall of statements passes. One AST
script rather than ruff's PLR0915 (too-many-statements): ruff has no line limit per function,
and its exemptions are `# noqa` comments inside the long functions themselves, files that others
edit; here the exemptions are one list, printed at every run, that may only shrink: an exempt
function that now fits fails the run until its entry is removed. Statements are counted like
pylint and ruff count them (every statement, nested ones included; a nested def or class is one).
Tests are not checked: a scenario test reads top to bottom.

    .venv/bin/python .ci/function-size.py
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

MAX_LINES = 60  # from the def line to the last line of the body
MAX_STATEMENTS = 50  # ruff's and pylint's default for too-many-statements
MAX_COMMAND_LINES = 40  # a CLI command (a function decorated with click's command()): parse, call, exit
CHECKED = ("src", "rules", "bench", ".ci")
SKIPPED_PARTS = {"good", "bad", "__pycache__", ".venv"}

# Functions over a limit, to be split into named steps (path:qualified name). Empty: every
# function is within the limits, and a new exemption needs a reason in review.
EXEMPT: set[str] = set()


def statements(node: ast.AST) -> int:
    n = 0
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.stmt):
            n += 1
        if not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            n += statements(child)
    return n


def functions(tree: ast.AST, prefix: str = "") -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    out: list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]] = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            out.append((prefix + node.name, node))
            out += functions(node, f"{prefix}{node.name}.")
        elif isinstance(node, ast.ClassDef):
            out += functions(node, f"{prefix}{node.name}.")
        else:
            out += functions(node, prefix)
    return out


def is_command(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """Decorated with click.command(...) or GROUP.command(...)."""
    return any(
        isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute) and d.func.attr == "command"
        for d in node.decorator_list
    )


def long_commands(path: Path, source: str) -> list[str]:
    """CLI commands over MAX_COMMAND_LINES lines (from the def line, like the other limit)."""
    out: list[str] = []
    for name, node in functions(ast.parse(source, str(path))):
        lines = (node.end_lineno or node.lineno) - node.lineno + 1
        if is_command(node) and lines > MAX_COMMAND_LINES:
            out.append(f"{path.as_posix()}:{node.lineno}: command {name}: {lines} lines (limit {MAX_COMMAND_LINES})")
    return out


def measure(path: Path, source: str) -> dict[str, tuple[int, int, int]]:
    """name -> (line, lines, statements) for every function in one file."""
    return {
        name: (node.lineno, (node.end_lineno or node.lineno) - node.lineno + 1, statements(node))
        for name, node in functions(ast.parse(source, str(path)))
    }


def main(repo: Path) -> int:
    errors: list[str] = []
    exempt_seen: list[str] = []
    for base in CHECKED:
        for path in sorted((repo / base).rglob("*.py")):
            relpath = path.relative_to(repo)
            if SKIPPED_PARTS & set(relpath.parts):
                continue
            for name, (line, lines, stmts) in measure(relpath, path.read_text(encoding="utf-8")).items():
                key = f"{relpath.as_posix()}:{name}"
                over = lines > MAX_LINES or stmts > MAX_STATEMENTS
                what = f"{relpath.as_posix()}:{line}: {name}: {lines} lines, {stmts} statements"
                if key in EXEMPT:
                    exempt_seen.append(key)
                    if over:
                        print(f"exempt, to split: {what}")
                    else:
                        errors.append(f"{what}: within the limits now, remove it from EXEMPT")
                elif over:
                    errors.append(f"{what} (limits: {MAX_LINES} lines, {MAX_STATEMENTS} statements)")
    errors += [f"{key}: in EXEMPT but no such function" for key in sorted(EXEMPT - set(exempt_seen))]
    for path in sorted((repo / "src/dynmigrate/cli").glob("*.py")):
        errors += long_commands(path.relative_to(repo), path.read_text(encoding="utf-8"))
    for error in errors:
        print(error, file=sys.stderr)
    print(f"function size: {len(EXEMPT)} exempt functions still to split, {len(errors)} errors")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(Path(__file__).resolve().parent.parent))
