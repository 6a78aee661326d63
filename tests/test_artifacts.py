"""Run-directory artifacts: the per-directory lock, workers that die with their parent, model
directory manifests, atomic writes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deepvideo_r1.artifacts import (
    LOCK_FILE,
    MANIFEST_FILE,
    DamagedFileError,
    DirectoryLock,
    DirectoryLockedError,
    ManifestError,
    pid_alive,
    read_json_object,
    replace_dir,
    verify_manifest,
    write_manifest,
    write_text_atomic,
)


def dead_pid() -> int:
    """The PID of a process that has exited (and was reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_live_holder_is_named_and_a_gone_one_is_taken_over(tmp_path, caplog):
    # a live process (our parent, pytest's launcher) holds the lock
    (tmp_path / LOCK_FILE).write_text(
        json.dumps({"pid": os.getppid(), "host": os.uname().nodename, "command": "train"})
    )
    with pytest.raises(DirectoryLockedError) as err:
        DirectoryLock(tmp_path, "eval").acquire()
    message = str(err.value)
    assert f"is in use by train (PID {os.getppid()}" in message and "\n" not in message
    # its process is gone (killed): taken over, with a warning
    gone = dead_pid()
    (tmp_path / LOCK_FILE).write_text(
        json.dumps({"pid": gone, "host": os.uname().nodename, "command": "train"})
    )
    with DirectoryLock(tmp_path, "eval"):
        assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
        with pytest.raises(DirectoryLockedError, match="already locked by this process"):
            DirectoryLock(tmp_path, "train").acquire()
    assert not (tmp_path / LOCK_FILE).exists()  # released
    assert any(f"its holder {{'pid': {gone}" in r.getMessage() for r in caplog.records)
    (tmp_path / LOCK_FILE).write_text("torn{")  # unreadable: no live holder can be named
    DirectoryLock(tmp_path, "eval").acquire().release()


_PARENT = """
import os, subprocess, sys, time
code = "import time; from deepvideo_r1.artifacts import die_with_parent; " \\
       f"die_with_parent({os.getpid()}, 0.05); print('watching', flush=True); time.sleep(60)"
child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
child.stdout.readline()
print(child.pid, flush=True)
time.sleep(60)
"""


def _running(pid: int) -> bool:
    """Alive and not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return pid_alive(pid)
    return state != "Z"


def test_a_worker_dies_with_its_parent():
    env = os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)}
    parent = subprocess.Popen([sys.executable, "-c", _PARENT], stdout=subprocess.PIPE, text=True, env=env)
    worker = int(parent.stdout.readline())
    assert _running(worker)
    parent.send_signal(signal.SIGKILL)  # `ablate` killed: no chance to stop its workers itself
    parent.wait()
    deadline = time.time() + 10
    while _running(worker) and time.time() < deadline:
        time.sleep(0.05)
    assert not _running(worker)


def test_a_changed_truncated_or_missing_file_of_a_model_directory_is_named(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 64)
    write_manifest(tmp_path)
    verify_manifest(tmp_path)
    data = bytearray((tmp_path / "model.safetensors").read_bytes())
    data[3] ^= 1  # one flipped bit
    (tmp_path / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(ManifestError, match=r"model\.safetensors does not match its sha256"):
        verify_manifest(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 10)
    with pytest.raises(ManifestError, match=r"model\.safetensors has 10 bytes, 64 when it was made"):
        verify_manifest(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(ManifestError, match=r"model\.safetensors is missing"):
        verify_manifest(tmp_path)
    (tmp_path / MANIFEST_FILE).write_text('{"files": {}}')
    with pytest.raises(ManifestError, match="lists no files"):
        verify_manifest(tmp_path)
    (tmp_path / MANIFEST_FILE).unlink()
    with pytest.raises(ManifestError, match=r"has no MANIFEST\.json"):
        verify_manifest(tmp_path)


def test_atomic_writes_and_directory_swaps_leave_one_complete_copy(tmp_path):
    write_text_atomic(tmp_path / "a.json", "1")
    write_text_atomic(tmp_path / "a.json", "2")
    assert (tmp_path / "a.json").read_text() == "2" and [p.name for p in tmp_path.iterdir()] == ["a.json"]
    old, new = tmp_path / "out", tmp_path / "new"
    old.mkdir()
    (old / "adapter_model.safetensors").write_text("old")
    new.mkdir()
    (new / "model.safetensors").write_text("new")
    replace_dir(new, old)
    assert [p.name for p in old.iterdir()] == ["model.safetensors"]  # nothing of the old model is left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "out"]


def test_a_lock_on_a_path_that_is_a_file_is_one_line(tmp_path):
    (tmp_path / "run").write_text("not a directory")
    with pytest.raises(DirectoryLockedError, match=r"run is not a writable directory"):
        DirectoryLock(tmp_path / "run", "train").acquire()


@pytest.mark.parametrize(
    ("content", "message"),
    [("{torn", "is not valid JSON"), ("[1]", "holds a JSON list, not an object"), ("{}", "lacks a")],
)
def test_a_damaged_side_file_is_named(tmp_path, content, message):
    (tmp_path / "x.json").write_text(content)
    with pytest.raises(DamagedFileError, match=re.escape(message)) as err:
        read_json_object(tmp_path / "x.json", required=("a",))
    assert str(err.value).startswith(str(tmp_path / "x.json"))
