"""Algorithm core: group advantages and policy losses (one registry).

Pure tensor/python code: imports no model, trainer, video or data module.
"""

from deepvideo_r1.algos.advantages import group_advantages, vanishing_groups, vanishing_ratio
from deepvideo_r1.algos.losses import (
    LOSS_ADVANTAGE_SCALE,
    LOSS_NORMALIZER,
    POLICY_LOSSES,
    aggregate,
    loss_option_names,
    micro_batch_weight,
    normalizer_units,
    policy_loss,
    register_policy_loss,
)
from deepvideo_r1.algos.reg_grpo import reg_grpo_loss
from deepvideo_r1.algos.sequence_losses import (
    gvpo_loss,
    online_dpo_loss,
    rebel_loss,
    reinforce_loss,
    reward_regression_loss,
    rloo_loss,
)

__all__ = [
    "LOSS_ADVANTAGE_SCALE",
    "LOSS_NORMALIZER",
    "POLICY_LOSSES",
    "aggregate",
    "group_advantages",
    "gvpo_loss",
    "loss_option_names",
    "micro_batch_weight",
    "normalizer_units",
    "online_dpo_loss",
    "policy_loss",
    "rebel_loss",
    "reg_grpo_loss",
    "register_policy_loss",
    "reinforce_loss",
    "reward_regression_loss",
    "rloo_loss",
    "vanishing_groups",
    "vanishing_ratio",
]
