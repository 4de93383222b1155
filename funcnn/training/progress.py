"""A per-run progress bar over epochs (tqdm), showing the book's figures."""

from __future__ import annotations

from collections.abc import Mapping

from tqdm.auto import tqdm

_SHOWN = (("loss", "loss"), ("accuracy", "acc"), ("val_loss", "val_loss"),
          ("val_accuracy", "val_acc"), ("learning_rate", "lr"))


class ProgressBar:
    """`update(epoch, logs)` after each epoch; silent when `enabled` is False."""

    def __init__(self, epochs: int, *, enabled: bool = True) -> None:
        self._bar = tqdm(total=epochs, unit="epoch", dynamic_ncols=True, leave=True) \
            if enabled and epochs > 0 else None

    def update(self, epoch: int, logs: Mapping[str, float]) -> None:
        if self._bar is None:
            return
        self._bar.set_description(f"epoch {epoch + 1}", refresh=False)
        self._bar.set_postfix(
            {label: f"{logs[name]:.4g}" for name, label in _SHOWN if name in logs},
            refresh=False)
        self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
