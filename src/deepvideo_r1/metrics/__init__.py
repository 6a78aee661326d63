"""Run metrics: metrics.jsonl, TensorBoard, the progress line, and PNG plots."""
