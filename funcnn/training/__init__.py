"""Training: the step, `fit` and its epoch plan, `fit_stream` over a stream of batches,
History and callbacks, progress, evaluate/predict, and ensembles. Builds on `funcnn.nn`
and `funcnn.optim`."""

from funcnn.training.ensemble import (
    EnsembleResult,
    evaluate_ensemble,
    fit_ensemble,
    init_ensemble,
    predict_ensemble,
)
from funcnn.training.epochs import epoch_orders, key_seed
from funcnn.training.fit import FitResult, NonFiniteLossError, fit
from funcnn.training.history import Callback, EarlyStopping, History
from funcnn.training.inference import (
    Evaluation,
    classes_from_outputs,
    evaluate,
    predict,
    predict_classes,
)
from funcnn.training.step import StepMetrics, make_train_step
from funcnn.training.stream import BadBatchError, StreamFitResult, StreamPosition, fit_stream

__all__ = [
    "BadBatchError",
    "Callback",
    "EarlyStopping",
    "EnsembleResult",
    "Evaluation",
    "FitResult",
    "History",
    "NonFiniteLossError",
    "StepMetrics",
    "StreamFitResult",
    "StreamPosition",
    "classes_from_outputs",
    "epoch_orders",
    "evaluate",
    "evaluate_ensemble",
    "fit",
    "fit_ensemble",
    "fit_stream",
    "init_ensemble",
    "key_seed",
    "make_train_step",
    "predict",
    "predict_classes",
    "predict_ensemble",
]
