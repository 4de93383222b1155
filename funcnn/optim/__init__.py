"""Hand-written optimizers following optax's protocol (no optax at runtime).

`opt = adam(0.05, decay=5e-7); state = opt.init(params)`, then per step
`updates, state = opt.update(grads, state, params); params = apply_updates(params, updates)`.
Hyper-parameters are array leaves of the state: read them with `learning_rate(state)` or
`get_hyperparams(state)`, change them with `replace_hyperparams(state, ...)`.
"""

from funcnn.optim.base import (
    EmptyState,
    GradientTransformation,
    Mask,
    MaskedNode,
    OptState,
    TransformInitFn,
    TransformUpdateFn,
    Updates,
    apply_updates,
)
from funcnn.optim.hyperparams import (
    Schedule,
    get_hyperparams,
    learning_rate,
    replace_hyperparams,
)
from funcnn.optim.loss_scale import (
    LossScaleState,
    dynamic_loss_scale,
    loss_scale,
    skipped_steps,
    static_loss_scale,
)
from funcnn.optim.optimizers import (
    AdaGradState,
    AdamState,
    LearningRate,
    RMSPropState,
    SGDState,
    adagrad,
    adam,
    adamw,
    rmsprop,
    sgd,
)
from funcnn.optim.schedules import (
    constant,
    cosine_decay,
    exponential_decay,
    inverse_time_decay,
    linear_warmup,
    piecewise_constant,
)
from funcnn.optim.transforms import (
    ClipByGlobalNormState,
    MaskedState,
    chain,
    clip_by_global_norm,
    freeze,
    global_norm,
    identity,
    masked,
    scale,
)

__all__ = [
    "AdaGradState",
    "AdamState",
    "ClipByGlobalNormState",
    "EmptyState",
    "GradientTransformation",
    "LearningRate",
    "LossScaleState",
    "Mask",
    "MaskedNode",
    "MaskedState",
    "OptState",
    "RMSPropState",
    "SGDState",
    "Schedule",
    "TransformInitFn",
    "TransformUpdateFn",
    "Updates",
    "adagrad",
    "adam",
    "adamw",
    "apply_updates",
    "chain",
    "clip_by_global_norm",
    "constant",
    "cosine_decay",
    "dynamic_loss_scale",
    "exponential_decay",
    "freeze",
    "get_hyperparams",
    "global_norm",
    "identity",
    "inverse_time_decay",
    "learning_rate",
    "linear_warmup",
    "loss_scale",
    "masked",
    "piecewise_constant",
    "replace_hyperparams",
    "rmsprop",
    "scale",
    "sgd",
    "skipped_steps",
    "static_loss_scale",
]
