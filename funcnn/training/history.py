"""Per-epoch training records and the callbacks that read them (book chapters 18-19)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

import jax
import jax.numpy as jnp

from funcnn.typing import Params

HISTORY_KEYS = ("loss", "data_loss", "reg_loss", "accuracy", "learning_rate", "val_loss",
                "val_accuracy", "skipped_steps", "loss_scale")


@dataclass
class History:
    """One list entry per epoch. `loss = data_loss + reg_loss` is the objective that was
    optimized: `data_loss` is the sample-weighted mean over the epoch's N samples, each
    measured at the params of the step that trained on it, and `reg_loss` the mean over the
    epoch's steps of the penalty at that step's params, before its update (full batch: the
    book's chapters 14-18 printout; the book's chapter 19 summary instead adds the penalty
    after the epoch's last update). Accuracy is measured in training mode (dropout on),
    validation figures in inference mode, data loss only. `learning_rate` is the rate the
    next update uses. With loss scaling (`funcnn.optim.dynamic_loss_scale`),
    `skipped_steps` counts the epoch's steps skipped for non-finite gradients and
    `loss_scale` is the scale the next step uses. Lists without a value (no metric, no
    validation data, no loss scaling) stay empty."""

    epoch: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    data_loss: list[float] = field(default_factory=list)
    reg_loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    learning_rate: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    skipped_steps: list[float] = field(default_factory=list)
    loss_scale: list[float] = field(default_factory=list)

    def append(self, epoch: int, logs: Mapping[str, float]) -> None:
        """Record one epoch's figures (keys from `HISTORY_KEYS`; missing ones are skipped)."""
        self.epoch.append(epoch)
        for name in HISTORY_KEYS:
            if name in logs:
                getattr(self, name).append(float(logs[name]))

    def last(self) -> dict[str, float]:
        """The most recent epoch's figures, by name."""
        return {f.name: getattr(self, f.name)[-1] for f in fields(self) if getattr(self, f.name)}

    def to_dict(self) -> dict[str, list[Any]]:
        """Plain lists, ready for JSON (e.g. checkpoint metadata)."""
        return {f.name: list(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> History:
        """Inverse of `to_dict`; unknown keys are an error."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"History.from_dict: unknown keys {unknown}; expected {sorted(names)}")
        return cls(**{name: list(values) for name, values in data.items()})

    def extend(self, other: History) -> None:
        """Append `other`'s epochs to this history in place, as `list.extend` does (e.g. a
        resumed run's); returns None. `first + second` makes a new history instead."""
        if not isinstance(other, History):
            raise TypeError(f"History.extend: expected a History, got {type(other).__name__}")
        for f in fields(self):
            getattr(self, f.name).extend(getattr(other, f.name))

    def __add__(self, other: History) -> History:
        """A new history: this one followed by `other`; neither is changed."""
        if not isinstance(other, History):
            return NotImplemented
        return History(**{f.name: getattr(self, f.name) + getattr(other, f.name)
                          for f in fields(self)})


class Callback(Protocol):
    """Called after every epoch with its figures and parameters; return True to stop."""

    def __call__(self, epoch: int, logs: Mapping[str, float], params: Params) -> bool | None: ...


class EarlyStopping:
    """Stop when `monitor` has not improved by more than `min_delta` for `patience` epochs.

    `mode` is "min" (losses) or "max" (accuracies). With `keep_best=True` a copy of the
    best epoch's params is kept in `best_params` (and its epoch in `best_epoch`).
    """

    def __init__(self, monitor: str = "val_loss", *, patience: int = 5, min_delta: float = 0.0,
                 mode: str = "min", keep_best: bool = True) -> None:
        if monitor not in HISTORY_KEYS:
            raise ValueError(f"EarlyStopping: monitor must be one of {HISTORY_KEYS}, got "
                             f"{monitor!r}")
        if mode not in ("min", "max"):
            raise ValueError(f"EarlyStopping: mode must be 'min' or 'max', got {mode!r}")
        if not isinstance(patience, int) or patience < 0:
            raise ValueError(f"EarlyStopping: patience must be an int >= 0, got {patience!r}")
        if not min_delta >= 0:
            raise ValueError(f"EarlyStopping: min_delta must be >= 0, got {min_delta!r}")
        self.monitor, self.patience, self.min_delta, self.mode = monitor, patience, min_delta, mode
        self.keep_best = keep_best
        self.best = math.inf if mode == "min" else -math.inf
        self.best_epoch: int | None = None
        self.best_params: Params | None = None
        self.stopped_epoch: int | None = None
        self._waited = 0

    def _improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def __call__(self, epoch: int, logs: Mapping[str, float], params: Params) -> bool:
        if self.monitor not in logs:
            raise ValueError(
                f"EarlyStopping: no {self.monitor!r} in this epoch's figures "
                f"{sorted(logs)}; pass validation_data or a metric to fit"
            )
        value = float(logs[self.monitor])
        if self._improved(value):
            self.best, self.best_epoch, self._waited = value, epoch, 0
            if self.keep_best:  # a copy: fit donates its own buffers to the next epoch
                self.best_params = jax.tree.map(jnp.copy, params)
            return False
        self._waited += 1
        if self._waited > self.patience:
            self.stopped_epoch = epoch
            return True
        return False
