"""The house rules a reader cannot see in any one file: dependencies point one way (import-linter's
contracts in pyproject.toml), the code is formatted and linted (ruff), and no import hides inside a
function without saying why. `python3 dev.py test` runs these, so CI fails on a violation."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PACKAGES = ("canvas_project", "deals", "canvas", "superadmin", "internal_api")


def _run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)


def test_the_layers_contract_holds():
    result = _run(str(BIN / "lint-imports"), "--no-cache")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "broken" not in result.stdout.lower().replace("0 broken", "")


@pytest.mark.parametrize("command", [("check", "."), ("format", "--check", ".")], ids=["check", "format"])
def test_ruff_is_clean(command):
    result = _run(str(BIN / "ruff"), *command)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def _function_level_imports(path: Path) -> list[tuple[int, str]]:
    source = path.read_text()
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for inner in ast.walk(node):
            if isinstance(inner, ast.Import | ast.ImportFrom):
                # a `# lazy: <why>` comment on the import or on one of the few lines above its block
                said = " ".join(lines[max(0, inner.lineno - 6) : inner.lineno])
                if "# lazy:" not in said and "# lazy (" not in said:
                    found.append((inner.lineno, lines[inner.lineno - 1].strip()))
    return found


def test_no_import_hides_in_a_function_without_saying_why():
    # a function-level import is not a way around a cycle: move the shared thing down. The few that must be
    # lazy (AppConfig.ready, migrations, optional heavy readers) say so in a `# lazy: <why>` comment.
    offenders = [
        f"{path.relative_to(REPO)}:{line}: {text}"
        for package in PACKAGES
        for path in sorted((REPO / package).rglob("*.py"))
        for line, text in _function_level_imports(path)
    ]
    assert not offenders, "\n".join(offenders)
