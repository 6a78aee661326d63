"""Verifiable rewards: format, accuracy per problem type, temporal IoU, registry."""

from deepvideo_r1.rewards.accuracy import (
    ANSWER_FORMATS,
    accuracy_reward,
    check_gold,
    known_problem_types,
    parse_choice,
)
from deepvideo_r1.rewards.errors import RewardError
from deepvideo_r1.rewards.parsing import TAIL_CHARS, extract_answer, format_reward, parse_number
from deepvideo_r1.rewards.registry import (
    DEFAULT_WEIGHTS,
    REWARD_FUNCTIONS,
    RewardBreakdown,
    RewardFn,
    compute_rewards,
    get_reward,
    load_reward_from_file,
    register_reward,
)
from deepvideo_r1.rewards.temporal import merge_spans, parse_predicted_span, temporal_iou

__all__ = [
    "ANSWER_FORMATS",
    "DEFAULT_WEIGHTS",
    "REWARD_FUNCTIONS",
    "TAIL_CHARS",
    "RewardBreakdown",
    "RewardError",
    "RewardFn",
    "accuracy_reward",
    "check_gold",
    "compute_rewards",
    "extract_answer",
    "format_reward",
    "get_reward",
    "known_problem_types",
    "load_reward_from_file",
    "merge_spans",
    "parse_choice",
    "parse_number",
    "parse_predicted_span",
    "register_reward",
    "temporal_iou",
]
