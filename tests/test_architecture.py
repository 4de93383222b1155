"""The package layout (docs/design.md, "Architecture"): the import contracts of
pyproject.toml hold on the tree and catch a planted violation, a new layer module needs
no edit outside `funcnn/nn/`, and no module grows past 400 lines."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: import-linter brings tomli
    import tomli as tomllib

pytest.importorskip("importlinter", reason="import-linter is in the dev extra")

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "funcnn"
MAX_LINES = 400

# lint-imports as `python -c` (no dependence on PATH); it analyses the `funcnn` found from
# its working directory, and reads the contracts from the pyproject.toml there.
LINT_IMPORTS = ("import sys; from importlinter.cli import lint_imports_command; "
                "sys.exit(lint_imports_command())")


def config() -> dict[str, Any]:
    with open(ROOT / "pyproject.toml", "rb") as file:
        settings: dict[str, Any] = tomllib.load(file)["tool"]["importlinter"]
    return settings


def contract(contract_id: str) -> dict[str, Any]:
    (found,) = [c for c in config()["contracts"] if c["id"] == contract_id]
    return found


def top_level_modules() -> set[str]:
    """`funcnn.x` for every module and package directly under funcnn/."""
    names = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    names |= {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    return {f"funcnn.{name}" for name in names}


def environment(path: Path) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(path), COLUMNS="200", PYTHONDONTWRITEBYTECODE="1",
               JAX_PLATFORMS="cpu")
    env.pop("PYTHONSTARTUP", None)
    return env


def lint_imports(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", LINT_IMPORTS, "--no-cache", "--no-logo"],
                          cwd=path, env=environment(path), capture_output=True, text=True,
                          timeout=120, check=False)


def copy_of_the_package(tmp_path: Path) -> Path:
    """funcnn/ and pyproject.toml copied to `tmp_path`, which is returned."""
    shutil.copytree(PACKAGE, tmp_path / "funcnn",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def plant(root: Path, module: str, code: str) -> None:
    """Append `code` to funcnn/`module` of the copy."""
    path = root / "funcnn" / module
    path.write_text(path.read_text(encoding="utf-8") + "\n" + textwrap.dedent(code),
                    encoding="utf-8")


def status(contract_id: str, kept: bool) -> str:
    """The line lint-imports writes for a contract."""
    return f"{contract(contract_id)['name']} {'KEPT' if kept else 'BROKEN'}"


def test_the_tree_keeps_every_contract() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 broken." in result.stdout
    for c in config()["contracts"]:
        assert status(c["id"], kept=True) in result.stdout


def test_the_contracts_cover_every_module_and_count_type_checking_imports() -> None:
    settings = config()
    assert settings["root_package"] == "funcnn"
    assert str(settings.get("exclude_type_checking_imports", False)).lower() == "false"
    modules = top_level_modules()
    # Every module but the command is a source of "the library never imports the command".
    assert set(contract("library")["source_modules"]) == modules - {"funcnn.cli"}
    # An optimizer may import funcnn.tree and funcnn.typing, nothing else of funcnn.
    assert set(contract("optim")["forbidden_modules"]) == modules - {
        "funcnn.optim", "funcnn.tree", "funcnn.typing"}
    # A precision policy is plain data: funcnn.typing is all it may import of funcnn.
    assert set(contract("precision")["forbidden_modules"]) == modules - {
        "funcnn.precision", "funcnn.typing"}
    assert {c["type"] for c in settings["contracts"]} >= {"forbidden", "layers",
                                                          "acyclic_siblings"}


def test_the_command_imported_from_a_layer_breaks_the_contracts(tmp_path: Path) -> None:
    root = copy_of_the_package(tmp_path)
    plant(root, "nn/dense.py", "import funcnn.cli  # noqa: E402\n")
    result = lint_imports(root)
    assert result.returncode == 1, result.stdout + result.stderr
    for broken in ("nn", "library", "root", "layers"):
        assert status(broken, kept=False) in result.stdout
    assert status("optim", kept=True) in result.stdout
    assert "funcnn.nn.dense -> funcnn.cli" in result.stdout


def test_an_optimizer_in_a_layer_and_a_model_in_data_break_the_contracts(
        tmp_path: Path) -> None:
    root = copy_of_the_package(tmp_path)
    plant(root, "nn/dropout.py", "from funcnn.optim import sgd  # noqa: E402\n")
    plant(root, "data/splits.py", "from funcnn.nn import Dense  # noqa: E402\n")
    result = lint_imports(root)
    assert result.returncode == 1, result.stdout + result.stderr
    for broken in ("nn", "data", "layers"):
        assert status(broken, kept=False) in result.stdout
    for kept in ("optim", "checkpoint", "library", "acyclic"):
        assert status(kept, kept=True) in result.stdout
    assert "funcnn.nn.dropout -> funcnn.optim" in result.stdout
    assert "funcnn.data.splits -> funcnn.nn" in result.stdout


def test_a_cycle_under_type_checking_breaks_the_contracts(tmp_path: Path) -> None:
    root = copy_of_the_package(tmp_path)
    # A cycle inside funcnn.training (fit imports config), only when type checking: the
    # contracts count such imports like any other.
    plant(root, "training/config.py", """
        from typing import TYPE_CHECKING  # noqa: E402

        if TYPE_CHECKING:
            from funcnn.training.fit import fit
    """)
    result = lint_imports(root)
    assert result.returncode == 1, result.stdout + result.stderr
    assert status("acyclic", kept=False) in result.stdout
    assert "No cycles are allowed in funcnn.training." in result.stdout
    assert status("layers", kept=True) in result.stdout


NEW_LAYER = '''\
"""`Scale`: multiply by a constant (a layer family added in one module)."""

from __future__ import annotations

from funcnn.nn.layer import Layer, parameter_free
from funcnn.typing import Array


def Scale(factor: float) -> Layer:
    """`y = factor * x`."""

    def scale(x: Array) -> Array:
        return factor * x

    return parameter_free("Scale", scale, {"factor": factor})
'''

USE_NEW_LAYER = """\
import jax
import jax.numpy as jnp
import funcnn
assert funcnn.__file__.startswith({root!r}), funcnn.__file__
assert "Scale" in funcnn.__all__ and funcnn.Scale is funcnn.nn.scale.Scale
x = jnp.arange(4.0).reshape(1, 4)
net = funcnn.serial(funcnn.Dense(2), funcnn.Scale(3.0))
params, state = net.init(jax.random.key(0), (4,))
y, _ = net.apply(params, state, x)
dense_y, _ = funcnn.Dense(2).apply(params["0_dense"], state.get("0_dense", {{}}), x)
assert y.shape == (1, 2) and jnp.allclose(y, 3.0 * dense_y), (y, dense_y)
print("ok")
"""


def test_a_new_layer_module_needs_no_edit_outside_nn(tmp_path: Path) -> None:
    root = copy_of_the_package(tmp_path)
    nn = root / "funcnn" / "nn"
    (nn / "scale.py").write_text(NEW_LAYER, encoding="utf-8")
    init = (nn / "__init__.py").read_text(encoding="utf-8")
    # The family's import line and its name in funcnn.nn.__all__ (which the top-level
    # funcnn/__init__.py star-imports); nothing outside funcnn/nn/ changes.
    init = init.replace("\n__all__ = [\n", '\nfrom funcnn.nn.scale import Scale\n\n'
                        '__all__ = [\n    "Scale",\n', 1)
    assert "funcnn.nn.scale" in init
    (nn / "__init__.py").write_text(init, encoding="utf-8")
    for name in ("__init__.py", "typing.py"):
        assert (root / "funcnn" / name).read_bytes() == (PACKAGE / name).read_bytes()
    result = subprocess.run(
        [sys.executable, "-c", USE_NEW_LAYER.format(root=str(root))], cwd=root,
        env=environment(root), capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("ok")


def test_no_module_is_over_400_lines() -> None:
    lengths = {str(path.relative_to(ROOT)): len(path.read_text(encoding="utf-8").splitlines())
               for path in PACKAGE.rglob("*.py")}
    assert len(lengths) > 40
    too_long = {path: n for path, n in lengths.items() if n > MAX_LINES}
    assert not too_long, f"modules over {MAX_LINES} lines (split them): {too_long}"


def test_funcnn_nn_lists_every_name_it_imports() -> None:
    """A family imported into funcnn/nn/__init__.py but missing from its __all__ would not
    reach the top level (nor a type checker): add the name to __all__ there."""
    import types

    import funcnn.nn

    imported = {name for name, value in vars(funcnn.nn).items()
                if not name.startswith("_") and not isinstance(value, types.ModuleType)}
    assert imported == set(funcnn.nn.__all__)
    assert set(funcnn.nn.__all__) <= set(funcnn.__all__)
