"""Module paths of funcnn 0.1 that moved in 0.2, kept importable for one release.

`import funcnn.layers` (or `funcnn.layers` as an attribute) still works: it gives a module
that forwards every name to its new home and raises a `DeprecationWarning` naming it.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings
from collections.abc import Sequence

MOVED_MODULES: dict[str, str] = {
    "funcnn.layers": "funcnn.nn",
    "funcnn.combinators": "funcnn.nn",
    "funcnn.errors": "funcnn.nn.errors",
    "funcnn.train": "funcnn.training",
    "funcnn.inference": "funcnn.training.inference",
    "funcnn.history": "funcnn.training.history",
    "funcnn.ensemble": "funcnn.training.ensemble",
    "funcnn.epochs": "funcnn.training.epochs",
    "funcnn.progress": "funcnn.training.progress",
}
"""Old module path -> new module path (see CHANGELOG.md, 0.2.0). Only library modules:
the command's own modules of 0.1 (`funcnn.commands`, `demo`, `model_spec`,
`dataset_splits`, `plots`) moved into `funcnn.cli` without an alias, since an alias here
would make the library import the command."""

_ALSO_FROM: dict[str, tuple[str, ...]] = {
    "funcnn.layers": ("funcnn.nn.layer", "funcnn.nn.dense", "funcnn.nn.activation"),
    "funcnn.combinators": ("funcnn.nn.combinators", "funcnn.nn.summary"),
    "funcnn.train": ("funcnn.training.fit", "funcnn.training.step", "funcnn.training.loop",
                     "funcnn.training.config", "funcnn.training.epochs",
                     "funcnn.training.inference"),
    "funcnn.inference": ("funcnn.training.batching",),
}
"""Where the other names of a module that was split now live."""


def warn_moved(old: str, stacklevel: int = 3) -> str:
    """Warn that `old` moved; returns its new path."""
    new = MOVED_MODULES[old]
    warnings.warn(f"{old} moved to {new} in funcnn 0.2; import {new} instead (the old path "
                  "goes away in the next release)", DeprecationWarning, stacklevel=stacklevel)
    return new


def forwarding_module(old: str) -> types.ModuleType:
    """A module named `old` whose names are looked up in the module it moved to."""
    target = importlib.import_module(MOVED_MODULES[old])
    module = types.ModuleType(old, f"Deprecated alias of {target.__name__}.")
    homes = [target, *(importlib.import_module(m) for m in _ALSO_FROM.get(old, ()))]

    def forward(name: str) -> object:
        for home in homes:
            if hasattr(home, name):
                return getattr(home, name)
        raise AttributeError(f"{old} (now {target.__name__}) has no attribute {name!r}")

    module.__dict__["__getattr__"] = forward
    module.__dict__["__all__"] = list(getattr(target, "__all__", ()))
    return module


class _MovedLoader(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        warn_moved(spec.name, stacklevel=6)
        return forwarding_module(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        del module


class MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Finds the 0.1 module paths of `MOVED_MODULES`."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: types.ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        del path, target
        if fullname not in MOVED_MODULES:
            return None
        return importlib.machinery.ModuleSpec(fullname, _MovedLoader())


def install() -> None:
    """Put the finder on `sys.meta_path` once."""
    if not any(isinstance(finder, MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(MovedModuleFinder())
