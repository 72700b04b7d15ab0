"""mypy --strict over rules/*/rule.py.

Every rule lives in rules/DMnnn-name/rule.py: the same module name ("rule") in folders whose
names are not Python identifiers, which mypy cannot check in one run. Copy each to DMnnn.py in a
temporary folder and check them together.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    rules = sorted((ROOT / "rules").glob("DM*/rule.py"))
    names: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="dynmigrate-rules-") as tmp:
        for rule in rules:
            target = Path(tmp) / f"{rule.parent.name.split('-', 1)[0]}.py"
            shutil.copy(rule, target)
            names[str(target)] = str(rule.relative_to(ROOT))
        proc = subprocess.run(
            [sys.executable, "-m", "mypy", "--strict", "--config-file", str(ROOT / "pyproject.toml"), tmp],
            cwd=ROOT,
            check=False,
            capture_output=True,
            text=True,
        )
    out = proc.stdout + proc.stderr
    for tmpname, real in names.items():
        out = out.replace(tmpname, real)
    print(out.replace(tmp, "rules"), end="")
    print(f"mypy --strict checked {len(rules)} rules")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
