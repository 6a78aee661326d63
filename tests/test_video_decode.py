"""load_video / load_image on real files written with PyAV in tmp_path.

Frame i carries its index as colour: R = 8·(i mod 32), G = 8·(i div 32), so a decoded frame
tells which source frame came back (codec error is < 4 grey levels).
"""

from __future__ import annotations

import av
import numpy as np
import pytest

from deepvideo_r1.video import VideoDecodeError, VideoNotFoundError, load_image, load_video
from deepvideo_r1.video.encode import write_video
from deepvideo_r1.video.sampling import resolve_frame_count

CODECS = [("mp4", "libx264"), ("webm", "libvpx-vp9"), ("avi", "mjpeg")]


def counter_frame(i: int, h: int = 48, w: int = 64) -> np.ndarray:
    img = np.full((h, w, 3), 128, np.uint8)
    img[..., 0], img[..., 1] = 8 * (i % 32), 8 * (i // 32)
    return img


def frame_index(frames: np.ndarray) -> list[int]:
    r = frames[:, :, :, 0].mean(axis=(1, 2))
    g = frames[:, :, :, 1].mean(axis=(1, 2))
    return [round(float(a) / 8) + 32 * round(float(b) / 8) for a, b in zip(r, g, strict=True)]


def make_video(path, n=50, fps=25, codec="libx264", size=(48, 64), **kw):
    write_video(path, (counter_frame(i, *size) for i in range(n)), fps, codec=codec, **kw)
    return path


def has_encoder(name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
    except Exception:
        return False
    return True


@pytest.mark.parametrize(("ext", "codec"), CODECS)
def test_uniform_count_picks_qwen_indices(tmp_path, ext, codec):
    if not has_encoder(codec):
        pytest.skip(f"this PyAV build has no {codec} encoder")
    path = make_video(tmp_path / f"v.{ext}", n=50, fps=25, codec=codec, gop=10)
    frames, info = load_video(path, num_frames=8)
    # 50 frames, 25 fps: round(linspace(0, 49, 8)) = 0, 7, 14, ..., 49 (step 49/7 = 7)
    expected = [0, 7, 14, 21, 28, 35, 42, 49]
    assert frames.dtype == np.uint8 and frames.shape == (8, 48, 64, 3)
    assert frame_index(frames) == expected
    np.testing.assert_allclose(info.timestamps, [i / 25 for i in expected], atol=1e-6)
    assert info.sample_fps == pytest.approx(8 / 2.0)  # T / clip duration (50 / 25 = 2 s)
    assert (info.width, info.height, info.fps) == (64, 48, 25.0)
    assert info.duration == pytest.approx(2.0, abs=0.05)
    assert info.path == str(path)
    seq_frames, seq_info = load_video(path, num_frames=8, seek=False)
    np.testing.assert_array_equal(frames, seq_frames)
    assert seq_info.timestamps == info.timestamps


def test_seeking_decodes_only_the_needed_gops(tmp_path):
    path = make_video(tmp_path / "long.mp4", n=250, fps=25, gop=25)  # 10 s, a keyframe every 1 s
    frames, info = load_video(path, num_frames=4)
    # targets linspace(0, 9.96, 4) = 0, 3.32, 6.64, 9.96 s → frames 0, 83, 166, 249
    assert frame_index(frames) == [0, 83, 166, 249]
    # each target decodes from its keyframe (75, 150, 225) forward: 1 + 9 + 17 + 25 = 52 frames at
    # most (non-reference frames are skipped, the decoder is drained: no look-ahead frames)
    assert info.decoded_frames <= 52
    assert info.seeks == 4  # one run per keyframe 0, 75, 150, 225
    _, full = load_video(path, num_frames=4, seek=False)
    assert full.decoded_frames == 250


def test_same_gop_targets_do_not_reseek(tmp_path):
    # one keyframe only (scenecut=0: the colour jump at frame 32 would otherwise add one)
    path = make_video(tmp_path / "onegop.mp4", n=50, fps=25, gop=1000, options={"x264-params": "scenecut=0"})
    _, info = load_video(path, num_frames=10)
    assert info.seeks == 1 and info.decoded_frames <= 50


def test_pick_on_a_keyframe_decodes_one_frame(tmp_path):
    path = make_video(tmp_path / "k.mp4", n=50, fps=25, gop=25, options={"x264-params": "scenecut=0"})
    # clip [1.00, 1.04): linspace(1.0, 1.04 - 0.04, 2) = 1.0, 1.0 → frame 25, the second keyframe;
    # the pick is known from packet times, so the seek lands on it and nothing else is decoded
    frames, info = load_video(path, num_frames=2, start=1.0, end=1.04)
    assert frame_index(frames) == [25, 25]
    assert (info.decoded_frames, info.seeks) == (1, 1)


def test_non_reference_frames_are_not_decoded(tmp_path):
    # one GOP of 50 frames; picks 0 and 49 are one run from frame 0, x264's non-reference
    # B-frames in between are skipped (skip_frame=NONREF) yet the picks are exact
    path = make_video(tmp_path / "b.mp4", n=50, fps=25, gop=1000, options={"x264-params": "scenecut=0"})
    frames, info = load_video(path, num_frames=2)
    assert frame_index(frames) == [0, 49]
    assert info.seeks == 1 and info.decoded_frames < 50
    full, full_info = load_video(path, num_frames=2, seek=False, threads=1)
    np.testing.assert_array_equal(frames, full)
    assert full_info.decoded_frames == 50


def test_failed_seek_falls_back_to_one_forward_pass(tmp_path, monkeypatch):
    path = make_video(tmp_path / "v.mp4", n=50, fps=25, gop=10)
    monkeypatch.setattr("deepvideo_r1.video._pyav.seek", lambda *args: False)
    frames, info = load_video(path, num_frames=8)
    assert frame_index(frames) == [0, 7, 14, 21, 28, 35, 42, 49]  # round(linspace(0, 49, 8))
    assert (info.seeks, info.decoded_frames) == (0, 50)  # decoding stops at the last pick, frame 49


def test_fps_sampling_and_clip_keep_absolute_timestamps(tmp_path):
    path = make_video(tmp_path / "v.mp4", n=75, fps=25, gop=5)  # 3 s
    # fps=2 over 3 s → 6 frames (within [4, 74]); linspace(0, 2.96, 6) step 0.592 s
    frames, info = load_video(path, fps=2)
    assert len(frames) == 6 and info.sample_fps == pytest.approx(2.0)
    # clip [1, 2) s, 4 frames: linspace(1.0, 1.96, 4) = 1.00, 1.32, 1.64, 1.96 → frames 25, 33, 41, 49
    frames, info = load_video(path, num_frames=4, start=1.0, end=2.0)
    assert frame_index(frames) == [25, 33, 41, 49]
    np.testing.assert_allclose(info.timestamps, [1.0, 1.32, 1.64, 1.96], atol=1e-6)
    assert (info.clip_start, info.clip_end) == (1.0, 2.0)
    assert info.sample_fps == pytest.approx(4.0)  # 4 frames / 1 s
    assert info.second_per_grid_ts() == pytest.approx(0.5)  # 2 / 4


def test_frame_count_rules():
    assert resolve_frame_count(3.0, 25, None, None) == 16  # default
    assert resolve_frame_count(3.0, 25, 7, None) == 8  # round(7/2)=round(3.5)=4 → 8
    assert resolve_frame_count(3.0, 25, 5, None) == 4  # round(2.5)=2 (half to even) → 4
    assert resolve_frame_count(3.0, 25, None, 0.5) == 4  # 1.5 → min_frames 4
    assert resolve_frame_count(3.0, 25, None, 10, max_frames=9) == 8  # 30 → floor2(9) = 8
    assert resolve_frame_count(0.2, 10, None, 2.0) == 2  # 2 frames in the clip cap min_frames
    with pytest.raises(ValueError, match="not both"):
        resolve_frame_count(3.0, 25, 8, 2.0)


def test_odd_size_and_variable_frame_rate(tmp_path):
    path = make_video(tmp_path / "odd.mp4", n=20, fps=10, size=(61, 97))
    frames, _ = load_video(path, num_frames=4)
    assert frames.shape == (4, 61, 97, 3)
    times = [0.0, 0.1, 0.15, 0.5, 0.55, 0.6, 1.2, 1.25, 1.9, 2.0]
    vfr = make_video(tmp_path / "vfr.mp4", n=len(times), fps=5, pts_seconds=times)
    frames, info = load_video(vfr, num_frames=6)
    idx = frame_index(frames)
    # each returned frame is the source frame at its reported time
    assert [times[i] for i in idx] == pytest.approx(info.timestamps, abs=1e-6)
    assert idx[0] == 0 and idx == sorted(idx)
    seq, _ = load_video(vfr, num_frames=6, seek=False)
    np.testing.assert_array_equal(frames, seq)


def write_audio_only(path):
    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 16000
        c.mux(s.encode(frame))
        c.mux(s.encode(None))


def test_unreadable_inputs_raise_naming_the_path(tmp_path):
    missing = tmp_path / "nope.mp4"
    with pytest.raises(FileNotFoundError, match=r"nope\.mp4"):
        load_video(missing)
    with pytest.raises(VideoNotFoundError):
        load_image(missing)
    text = tmp_path / "text.mp4"
    text.write_text("not a video at all\n" * 50)
    with pytest.raises(VideoDecodeError, match=r"text\.mp4"):
        load_video(text)
    audio = tmp_path / "audio.m4a"
    write_audio_only(audio)
    with pytest.raises(VideoDecodeError, match=r"no video stream in .*audio\.m4a"):
        load_video(audio)
    with pytest.raises(VideoDecodeError, match="empty"):
        load_video(make_video(tmp_path / "v.mp4", n=10), start=5.0)


@pytest.mark.parametrize(("ext", "codec"), CODECS)
def test_truncated_files_raise(tmp_path, ext, codec):
    if not has_encoder(codec):
        pytest.skip(f"this PyAV build has no {codec} encoder")
    path = make_video(tmp_path / f"v.{ext}", n=75, fps=25, codec=codec, gop=25)
    data = path.read_bytes()
    cut = tmp_path / f"cut.{ext}"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoDecodeError, match=rf"cut\.{ext}"):
        load_video(cut, num_frames=8)


def test_zero_frame_video_raises(tmp_path):
    path = tmp_path / "zero.mkv"
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        a = c.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 16000
        c.mux(a.encode(frame))
        c.mux(a.encode(None))
    with pytest.raises(VideoDecodeError, match=r"no (decodable )?video frames in .*zero\.mkv"):
        load_video(path)


def write_image(path, image, codec, pix_fmt):
    with av.open(str(path), "w", format="image2") as c:
        s = c.add_stream(codec)
        s.height, s.width, s.pix_fmt = image.shape[0], image.shape[1], pix_fmt
        c.mux(s.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        c.mux(s.encode(None))


def test_load_image_png_exact_and_jpeg_close(tmp_path):
    img = np.random.default_rng(0).integers(0, 256, (61, 97, 3), dtype=np.uint8)
    write_image(tmp_path / "a.png", img, "png", "rgb24")
    out = load_image(tmp_path / "a.png")
    assert out.dtype == np.uint8 and out.shape == (61, 97, 3)
    np.testing.assert_array_equal(out, img)  # png is lossless
    flat = np.full((61, 97, 3), 100, np.uint8)
    write_image(tmp_path / "a.jpg", flat, "mjpeg", "yuvj444p")
    assert np.abs(load_image(tmp_path / "a.jpg").astype(int) - 100).max() <= 2
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(VideoDecodeError, match=r"bad\.png"):
        load_image(bad)
