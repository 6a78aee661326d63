"""Run-directory artifacts: atomic writes, directory swaps, the per-directory lock, file manifests.

One home for the small mechanisms every stage needs, so each is written once:

- `atomic_write` / `write_text_atomic` / `write_json_atomic`: write beside, fsync, rename; a reader
  sees the old file or the new one.
- `differing_keys`: two recorded settings trees compared leaf by leaf, each difference named by
  its dotted key (what every "reuse only if the recorded settings match" guard reports).
- `replace_dir`: a finished temporary directory renamed into place; a directory already there is
  moved aside first and deleted last, so at every instant one complete copy exists (a kill between
  the renames leaves `<name>.old-PID` and a complete `<name>.tmp-PID`, see `restore_interrupted`).
- `DirectoryLock`: one process per output directory. `<dir>/.lock` names the holder (PID, host,
  command); a second process is refused with that name, and a lock whose process is gone is taken
  over with a warning.
- `die_with_parent`: a worker subprocess ends when the process that started it is gone, so a
  killed parent never leaves a worker writing into a directory the next parent will use.
- `write_manifest` / `verify_manifest`: `MANIFEST.json` lists every file of a model directory with
  its size and sha256 when the directory is made; a reused directory is checked against it first.

Nothing here imports the config or any stage: every package may use it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

logger = logging.getLogger(__name__)

LOCK_FILE = ".lock"
MANIFEST_FILE = "MANIFEST.json"
_CHUNK = 8 << 20


# ---------------------------------------------------------------- files and directories


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 8 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def atomic_write(target: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Call `write(f)` on a same-folder temp file opened "wb", sync it, then rename it over `target`
    (atomic on POSIX and Windows): a reader sees the old file or the new one, never half of one."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def write_text_atomic(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """`path` holds `text` (encoded with `encoding`), or is left as it was."""
    return atomic_write(path, lambda f: f.write(text.encode(encoding)))


def write_json_atomic(path: str | os.PathLike, data: Any) -> Path:
    """`path` holds `data` as indented JSON, or is left as it was."""
    return write_text_atomic(path, json.dumps(data, indent=2))


def temporary_sibling(path: str | Path, kind: str = "tmp") -> Path:
    """`<parent>/<name>.<kind>-<pid>`: where `path` is built before `replace_dir` renames it."""
    path = Path(path)
    return path.with_name(f"{path.name}.{kind}-{os.getpid()}")


def replace_dir(src: str | Path, dst: str | Path) -> None:
    """Rename the finished directory `src` to `dst`. An existing `dst` is renamed to
    `<dst>.old-PID` first and deleted only after `src` is in place: a kill between the two renames
    leaves both complete copies on disk, never none."""
    src, dst = Path(src), Path(dst)
    old = None
    if dst.is_symlink():
        dst.unlink()  # a link is replaced, never the directory it points to
    elif dst.exists():
        old = temporary_sibling(dst, "old")
        os.replace(dst, old)
    os.replace(src, dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


class DamagedFileError(ValueError):
    """A side file (settings, results, state) is not the JSON object it should be."""


def flatten_settings(tree: dict, prefix: str = "") -> dict[str, Any]:
    """{"algo": {"beta": 0.1, "w": {"a": 1}}} -> {"algo.beta": 0.1, "algo.w.a": 1}."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat |= flatten_settings(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def differing_keys(old: dict, new: dict) -> dict[str, tuple[Any, Any]]:
    """{dotted key: (old, new)} for every leaf that differs between two nested settings trees (a key
    one side lacks counts as None there): what a "reuse only if the recorded settings match" guard
    names when it refuses."""
    a, b = flatten_settings(old), flatten_settings(new)
    return {k: (a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)}


def read_json_object(path: str | Path, required: tuple[str, ...] = ()) -> dict:
    """The JSON object in `path`; DamagedFileError naming the file when it is unreadable, not JSON,
    not an object, or lacks one of the `required` keys."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DamagedFileError(f"{path} is not valid JSON ({type(e).__name__}: {e})") from e
    if not isinstance(data, dict):
        raise DamagedFileError(f"{path} holds a JSON {type(data).__name__}, not an object")
    missing = [k for k in required if k not in data]
    if missing:
        raise DamagedFileError(f"{path} lacks {', '.join(missing)}")
    return data


# ---------------------------------------------------------------- processes and the lock


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists on this machine (one we may not signal counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


PARENT_PID_ENV = "DEEPVIDEO_R1_PARENT_PID"
"""Set by a parent for its worker subprocesses: the PID `die_with_parent` watches."""


def die_with_parent(parent: int, interval: float = 1.0) -> threading.Thread:
    """Watch (in a daemon thread) that this process's parent is still `parent`; once it is gone
    (the process was re-parented), SIGTERM this process. Returns the thread."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        logger.warning("parent process %d is gone; stopping this worker (PID %d)", parent, os.getpid())
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=watch, name="die-with-parent", daemon=True)
    thread.start()
    return thread


class DirectoryLockedError(RuntimeError):
    """Another live process holds the output directory's lock (or it cannot be written at all)."""


def _read_lock(path: Path) -> dict:
    try:
        holder = json.loads(path.read_text(encoding="utf-8"))
        return holder if isinstance(holder, dict) else {}
    except (OSError, ValueError):
        return {}  # torn or foreign content: treated as a lock of a process that is gone


def _holder_alive(holder: dict) -> bool:
    pid = holder.get("pid")
    if not isinstance(pid, int):
        return False
    if holder.get("host") != socket.gethostname():
        return True  # another machine's process cannot be checked from here: assume it runs
    return pid_alive(pid)


class DirectoryLock:
    """Exclusive lock on an output directory: `with DirectoryLock(dir, "train"): ...`.

    The lock is `<dir>/.lock`, created with O_EXCL and holding {"pid", "host", "command",
    "since"}. Held by a live process: DirectoryLockedError naming it. Held by a process that is
    gone (killed): taken over with a warning. Released (deleted) on exit if still ours.
    """

    def __init__(self, directory: str | Path, command: str) -> None:
        self.directory = Path(directory)
        self.path = self.directory / LOCK_FILE
        self.command = command
        self.held = False

    def acquire(self) -> DirectoryLock:
        try:
            return self._acquire()
        except OSError as e:  # read-only (EROFS, EACCES), a file in the way, ...
            raise DirectoryLockedError(f"{self.directory} is not a writable directory ({e})") from e

    def _acquire(self) -> DirectoryLock:
        self.directory.mkdir(parents=True, exist_ok=True)
        record = {"pid": os.getpid(), "host": socket.gethostname(), "command": self.command}
        record["since"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._take_over_if_stale()
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(record, f)
            self.held = True
            return self
        raise DirectoryLockedError(f"{self.path}: could not take the lock (another process keeps taking it)")

    def _take_over_if_stale(self) -> None:
        holder = _read_lock(self.path)
        if holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
            raise DirectoryLockedError(f"{self.directory} is already locked by this process ({holder})")
        if _holder_alive(holder):
            raise DirectoryLockedError(
                f"{self.directory} is in use by {holder.get('command', '?')} (PID {holder['pid']} on "
                f"{holder.get('host')}, since {holder.get('since', '?')}); wait for it to finish, stop it, "
                f"or use another output directory (if that process is surely gone, delete {self.path})"
            )
        logger.warning("taking over %s: its holder %s is gone", self.path, holder or "(unreadable)")
        stale = temporary_sibling(self.path, "stale")
        try:
            os.replace(self.path, stale)  # one of several racing processes wins the rename
            stale.unlink()
        except FileNotFoundError:
            pass

    def release(self) -> None:
        if self.held and _read_lock(self.path).get("pid") == os.getpid():
            self.path.unlink(missing_ok=True)
        self.held = False

    def __enter__(self) -> DirectoryLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


# ---------------------------------------------------------------- model directory manifests


class ManifestError(RuntimeError):
    """A model directory does not match the manifest written when it was made."""


def file_manifest(directory: str | Path, skip: tuple[str, ...] = ()) -> dict[str, dict]:
    """{file name: {"size", "sha256"}} for every top-level file of `directory` but `skip`."""
    directory = Path(directory)
    return {
        p.name: {"size": p.stat().st_size, "sha256": sha256_file(p)}
        for p in sorted(directory.iterdir())
        if p.is_file() and p.name not in skip
    }


def write_manifest(directory: str | Path) -> Path:
    """Record every file of the finished model directory in `<directory>/MANIFEST.json`."""
    directory = Path(directory)
    files = file_manifest(directory, skip=(MANIFEST_FILE,))
    return write_text_atomic(directory / MANIFEST_FILE, json.dumps({"files": files}, indent=1))


def verify_manifest(directory: str | Path) -> None:
    """Raise ManifestError naming the first file that is missing, truncated or altered since
    `write_manifest`, or the manifest itself when it is absent or unreadable."""
    directory = Path(directory)
    path = directory / MANIFEST_FILE
    if not path.is_file():
        raise ManifestError(
            f"{directory} has no {MANIFEST_FILE} (made by an older version, or not finished); "
            "delete it to rebuild it"
        )
    try:
        files = json.loads(path.read_text(encoding="utf-8"))["files"]
        entries = [(str(name), int(e["size"]), str(e["sha256"])) for name, e in files.items()]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise ManifestError(
            f"{path} is unreadable ({type(e).__name__}: {e}); delete {directory} to rebuild it"
        ) from e
    if not entries:
        raise ManifestError(f"{path} lists no files; delete {directory} to rebuild it")
    for name, size, digest in entries:
        file = directory / name
        if not file.is_file():
            raise ManifestError(f"{file} is missing (listed in {path}); delete {directory} to rebuild it")
        if file.stat().st_size != size:
            raise ManifestError(
                f"{file} has {file.stat().st_size} bytes, {size} when it was made (truncated?); "
                f"delete {directory} to rebuild it"
            )
        if sha256_file(file) != digest:
            raise ManifestError(
                f"{file} does not match its sha256 in {path} (the file was altered); delete {directory} "
                "to rebuild it"
            )
