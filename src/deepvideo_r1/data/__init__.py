"""Datasets: the `Sample` record, format adapters, loading with an error policy, prompt templates."""

from deepvideo_r1.data.errors import DataError, DataFormatError, MissingMediaError, UnknownFormatError
from deepvideo_r1.data.fields import split_reasoning_steps
from deepvideo_r1.data.formats.jsonl import write_samples_jsonl
from deepvideo_r1.data.loader import LoadResult, SkippedRecord, load_samples
from deepvideo_r1.data.prompts import build_question_text, build_target_text, format_answer
from deepvideo_r1.data.registry import FORMATS, FormatAdapter, RecordContext, get_format, register_format
from deepvideo_r1.data.sample import PROBLEM_TYPES, ProblemType, Sample, VideoRef

__all__ = [
    "FORMATS",
    "PROBLEM_TYPES",
    "DataError",
    "DataFormatError",
    "FormatAdapter",
    "LoadResult",
    "MissingMediaError",
    "ProblemType",
    "RecordContext",
    "Sample",
    "SkippedRecord",
    "UnknownFormatError",
    "VideoRef",
    "build_question_text",
    "build_target_text",
    "format_answer",
    "get_format",
    "load_samples",
    "register_format",
    "split_reasoning_steps",
    "write_samples_jsonl",
]
