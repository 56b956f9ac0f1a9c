"""The house rules of docs/architecture.md hold, and the tool that checks them can fail."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO

SRC = REPO / "src" / "slipway"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(cwd: Path, pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": str(LINT_IMPORTS.parent), "HOME": str(cwd)}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_import_contracts_are_kept() -> None:
    done = _lint_imports(REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 kept, 0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "bad_import", "contract"),
    [
        ("data/table.py", "import slipway.cli.common", "layered"),
        ("training/search.py", "import pipelines.training_pipeline", "never imports"),
    ],
)
def test_a_wrong_import_breaks_a_contract(
    tmp_path: Path, module: str, bad_import: str, contract: str
) -> None:
    for name in ("pipelines", "components"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("*.yaml"))
    shutil.copytree(SRC, tmp_path / "slipway")
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "slipway" / module
    target.write_text(target.read_text() + f"\n{bad_import}\n")

    done = _lint_imports(tmp_path, pythonpath=tmp_path)

    assert done.returncode != 0
    broken = [line for line in done.stdout.splitlines() if line.endswith("BROKEN")]
    assert any(contract in line for line in broken), done.stdout


def test_every_package_lists_its_public_surface() -> None:
    packages = [p.parent for p in SRC.rglob("__init__.py")]
    assert len(packages) >= 10
    for package in packages:
        init = package / "__init__.py"
        tree = ast.parse(init.read_text())
        assert ast.get_docstring(tree), f"{init} has no docstring saying what the package owns"
        assigned = {
            target.id
            for node in ast.walk(tree)
            if isinstance(node, ast.Assign)
            for target in (
                node.targets[0].elts if isinstance(node.targets[0], ast.Tuple) else node.targets
            )
            if isinstance(target, ast.Name)
        }
        assert "__all__" in assigned, f"{init} has no __all__"


def test_public_names_resolve() -> None:
    import importlib

    for init in SRC.rglob("__init__.py"):
        name = ".".join(init.parent.relative_to(SRC.parent).parts)
        package = importlib.import_module(name)
        for public in package.__all__:
            assert getattr(package, public) is not None, f"{name}.{public}"
