"""deepvideo-r1: reinforcement fine-tuning of video LLMs with Reg-GRPO and difficulty-aware augmentation."""

__version__ = "0.1.0"
