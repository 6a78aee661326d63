"""Video decoding, frame sampling, Qwen-VL preprocessing and an on-disk frame cache."""

from deepvideo_r1.video.cache import FrameCache
from deepvideo_r1.video.decode import VideoInfo, load_image, load_video
from deepvideo_r1.video.encode import write_video
from deepvideo_r1.video.errors import VideoDecodeError, VideoNotFoundError
from deepvideo_r1.video.qwen import (
    patchify,
    qwen_image_inputs,
    qwen_video_inputs,
    resize_frames,
    second_per_grid_ts,
    smart_resize,
    video_max_pixels,
)

__all__ = [
    "FrameCache",
    "VideoDecodeError",
    "VideoInfo",
    "VideoNotFoundError",
    "load_image",
    "load_video",
    "patchify",
    "qwen_image_inputs",
    "qwen_video_inputs",
    "resize_frames",
    "second_per_grid_ts",
    "smart_resize",
    "video_max_pixels",
    "write_video",
]
