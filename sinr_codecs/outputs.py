"""Outputs that never cost the user what was there before.

Which destinations may be written or replaced (:func:`_check_destination`: only a store that
``sinr compress`` provably wrote, or a regular model file), how long work stays interruptible (a worker
thread waited for in short steps, :func:`_in_worker`), and how a complete output appears (renames with
SIGINT/SIGTERM/SIGHUP held back, :func:`_publish`), or a temporary one disappears (:func:`_discard`).
:mod:`sinr_codecs.weights` writes every store and model file through these.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sinr_codecs.errors import WeightsError
from sinr_codecs.model_files import _public_mode
from sinr_codecs.report import ATTR_KEY, FORMAT_NAME


def _is_zip(path: Path) -> bool:
    return path.suffix.lower() == ".zip"


_MAX_ROOT_METADATA = 512 << 20
"""Largest root ``zarr.json`` read when deciding whether an existing store may be replaced (bytes)."""


def _check_destination(path: Path, overwrite: bool, *, store: bool) -> None:
    """Refuse a destination that cannot be written, or whose replacement could lose the user's data.

    ``store``: ``path`` is a store (a folder, or a ``.zip``), replaced only when :func:`_not_ours` finds
    nothing against it; otherwise a model file, replaced only when it is a regular file.
    """
    parent = path.parent
    if not os.path.lexists(path):
        if not parent.exists():
            raise WeightsError(f"the folder {parent} does not exist; create it first")
        if not parent.is_dir():
            raise WeightsError(f"cannot write {path}: {parent} is not a folder")
        return
    if not overwrite:
        raise WeightsError(f"{path} already exists; choose another path or overwrite it (--force)")
    why = _not_ours(path) if store else _not_a_plain_file(path)
    if why:
        what = "a store written by sinr compress" if store else "a regular file"
        raise WeightsError(f"refusing to replace {path}: {why}; --force replaces only {what}: move it "
                           "away or choose another path")


def _not_a_plain_file(path: Path) -> str | None:
    if path.is_dir():
        return "it is a folder"
    if not path.is_file():
        return "it is not a regular file"
    return None


def _not_ours(path: Path) -> str | None:
    """Why ``path`` is not provably a store written by sinr compress (None when it is, or is an empty
    folder): a symbolic link, not a valid zip or folder of the right kind, no sinr-weights group
    attributes, or any file or folder that such a store does not hold."""
    if path.is_symlink():
        return "it is a symbolic link"
    if _is_zip(path):
        if not path.is_file():
            return "it is not a file"
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
                info = zf.getinfo("zarr.json") if "zarr.json" in names else None
                if info is None:
                    return "it is a zip without a Zarr group (no zarr.json)"
                if info.file_size > _MAX_ROOT_METADATA:
                    return "its zarr.json is too large to be ours"
                root = zf.read(info)
        except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, ValueError) as exc:
            return f"it is not a readable zip ({type(exc).__name__}: {exc})"
        return _foreign(root, names, [])
    if not path.is_dir():
        return "it is a file, not a store folder"
    files, folders, odd = [], [], []
    for entry in _walk(path):
        rel = entry.relative_to(path).as_posix()
        if entry.is_symlink() or not (entry.is_file() or entry.is_dir()):
            odd.append(rel)
        elif entry.is_dir():
            folders.append(rel)
        else:
            files.append(rel)
    if odd:
        return f"it holds {odd[0]!r}, which is not a regular file or folder"
    if not files and not folders:
        return None  # an empty folder: nothing to lose
    root_json = path / "zarr.json"
    if not root_json.is_file():
        return "it is a folder without zarr.json, not a Zarr store"
    if root_json.stat().st_size > _MAX_ROOT_METADATA:
        return "its zarr.json is too large to be ours"
    return _foreign(root_json.read_bytes(), files, folders)


def _walk(path: Path) -> Iterator[Path]:
    """Every entry under ``path`` (files, folders, links; links not followed)."""
    for top, dirs, files in os.walk(path, followlinks=False):
        for name in (*dirs, *files):
            yield Path(top) / name


def _foreign(root_json: bytes, files: list[str], folders: list[str]) -> str | None:
    """Why a store whose root metadata is ``root_json`` and which holds ``files`` and ``folders``
    (paths relative to its root, ``/``-separated) is not one sinr compress wrote; None when it is."""
    try:
        doc = json.loads(root_json)
        meta = doc["attributes"][ATTR_KEY]
        ok = doc.get("node_type") == "group" and isinstance(meta, dict) and meta.get("format") == FORMAT_NAME
    except (ValueError, TypeError, KeyError, AttributeError):
        ok = False
    if not ok:
        return "its zarr.json does not mark it as written by sinr compress"
    tensors = meta.get("tensors")
    arrays = {t["array"] for t in tensors if isinstance(t, dict) and isinstance(t.get("array"), str)} \
        if isinstance(tensors, list) else set()

    def chunk_path(parts: list[str]) -> bool:
        return all(p.isascii() and p.isdigit() for p in parts)

    def file_ok(key: str) -> bool:
        parts = key.split("/")
        if key == "zarr.json":
            return True
        if len(parts) < 2 or parts[0] not in arrays:
            return False
        # a 0-d array's one chunk is "c" itself
        return parts[1:] == ["zarr.json"] or (parts[1] == "c" and chunk_path(parts[2:]))

    def folder_ok(key: str) -> bool:
        parts = key.split("/")
        return parts[0] in arrays and (len(parts) == 1 or (parts[1] == "c" and chunk_path(parts[2:])))

    bad = [k for k in files if not file_ok(k)] + [k for k in folders if not folder_ok(k)]
    if bad:
        more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
        return f"it holds {bad[0]!r}{more}, which sinr compress does not write"
    return None


_DEFERRED = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM/SIGHUP back during a few renames or a clean-up, then deliver them.

    Only in the main thread (where Python runs signal handlers); elsewhere a no-op. A signal received
    meanwhile is raised again, once, through the handler that was installed before.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    saved = {}
    for sig in _DEFERRED:
        old = signal.getsignal(sig)
        if old is None:  # installed from C: cannot be put back
            continue
        signal.signal(sig, lambda signum, frame: pending.append(signum))
        saved[sig] = old
    try:
        yield
    finally:
        for sig, old in saved.items():
            signal.signal(sig, old)
        if pending:
            signal.raise_signal(pending[0])


def _in_worker(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` run in a daemon thread, waited for in 50 ms steps so that a signal handler (e.g.
    ``KeyboardInterrupt``) runs at once in the caller; on an interrupt the worker is abandoned."""
    box: list[tuple[bool, Any]] = []
    done = threading.Event()

    def target() -> None:
        try:
            box.append((True, fn(*args)))
        except BaseException as exc:  # handed to the caller
            box.append((False, exc))
        finally:
            done.set()

    threading.Thread(target=target, name="sinr-encode", daemon=True).start()
    while not done.wait(0.05):
        pass
    ok, value = box[0]
    if not ok:
        raise value
    return value


def _settle_zarr(timeout: float = 1.0) -> None:
    """Wait (at most ``timeout`` seconds) for zarr's background I/O to finish, e.g. a chunk write that an
    interrupt left running, so that it cannot recreate a folder that is then removed."""
    import asyncio

    try:
        from zarr.core.sync import sync
    except ImportError:  # pragma: no cover - another zarr layout
        return

    async def drain() -> None:
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if others:
            await asyncio.wait(others, timeout=timeout)

    with contextlib.suppress(Exception):  # a closed loop, a timeout: nothing more to wait for
        sync(drain(), timeout=timeout + 0.5)


def _discard(path: Path) -> None:
    """Remove a temporary output (folder or file), signals held back so that it is not left half-done."""
    if not os.path.lexists(path):
        return
    _settle_zarr()
    with _signals_deferred():
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                path.unlink()


def _publish(work: Path, dst: Path, overwrite: bool) -> None:
    """Put the complete store ``work`` (a folder next to ``dst``) at ``dst`` by renames.

    ``dst`` is checked again first (nothing foreign may have appeared there meanwhile). A ``.zip`` is
    written to a temporary sibling and renamed over ``dst``. A folder replaces an old store by renaming
    the old one aside, the new one in, and deleting the old one; if the second rename fails, the old one
    is renamed back.
    """
    _check_destination(dst, overwrite, store=True)
    if _is_zip(dst):
        fd, name = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
        os.close(fd)
        tmp = Path(name)
        try:
            _zip_directory(work, tmp)
            os.chmod(tmp, _public_mode(0o666))
            os.replace(tmp, dst)
        finally:
            _discard(tmp)
        return
    _chmod_tree(work)
    with _signals_deferred():
        if not os.path.lexists(dst):
            os.rename(work, dst)
            return
        aside = dst.with_name(f".{dst.name}.{os.getpid()}.{time.monotonic_ns()}.old")
        os.rename(dst, aside)
        try:
            os.rename(work, dst)
        except BaseException:
            os.rename(aside, dst)
            raise
        shutil.rmtree(aside, ignore_errors=True)


def _chmod_tree(path: Path) -> None:
    """Give a finished store the permissions a new folder would have (mkdtemp makes it private)."""
    os.chmod(path, _public_mode(0o777))


def _zip_directory(src: Path, dst: Path) -> None:
    """Zip the files under ``src`` into the file ``dst``: the JSON metadata deflated, the chunks (already
    compressed) stored as they are."""
    with zipfile.ZipFile(dst, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for p in sorted(src.rglob("*")):
            if p.is_file():
                deflate = p.name == "zarr.json"
                zf.write(p, p.relative_to(src).as_posix(),
                         compress_type=zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED,
                         compresslevel=9 if deflate else None)
