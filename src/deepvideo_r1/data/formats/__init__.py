"""Dataset format adapters; importing this package registers them (auto-detection tries this order)."""

from deepvideo_r1.data.formats import jsonl, longvideobench, nextgqa, seedbench_r1, videor1

__all__ = ["jsonl", "longvideobench", "nextgqa", "seedbench_r1", "videor1"]
