"""Typed errors of the video area: every unreadable input names its path."""

from __future__ import annotations


class VideoDecodeError(Exception):
    """A video or image could not be decoded (not a video, truncated, no video stream, zero frames)."""


class VideoNotFoundError(VideoDecodeError, FileNotFoundError):
    """The media file does not exist; catchable both as VideoDecodeError and FileNotFoundError."""
