"""What ``sinr`` does to what the user already had: --force replaces only its own stores, by a rename of a
complete new output; errors, interrupts and signals leave the previous output byte-identical and no
temporary files; write errors are one line naming the output."""

from __future__ import annotations

import errno
import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from sinr_codecs import outputs, weights
from sinr_codecs.cli import main
from sinr_codecs.weights import compress_weights

OPTS = {"sparsity": 8, "value_bits": 8, "device": "cpu"}


def smooth(rows: int, cols: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((rows, 3)) @ rng.standard_normal((3, cols)) + 0.05 * rng.standard_normal((rows, cols))
    return torch.from_numpy(w.astype(np.float32))


@pytest.fixture
def folder(tmp_path) -> Path:
    """A folder with two models (``a.pt``, ``b.pt``; different weights) and ``a`` compressed to
    ``old.zarr`` and ``old.zip``."""
    torch.save({"net.0.weight": smooth(48, 64), "net.0.bias": torch.linspace(-1, 1, 48)}, tmp_path / "a.pt")
    torch.save({"net.0.weight": smooth(96, 64, 1), "net.0.bias": torch.zeros(96)}, tmp_path / "b.pt")
    for name in ("old.zarr", "old.zip"):
        compress_weights(tmp_path / "a.pt", tmp_path / name, codec_config=OPTS, lossy="sinr", progress=False)
    return tmp_path


def fingerprint(path: Path) -> dict[str, str]:
    """SHA-256 of every file under ``path`` (or of ``path`` itself), by relative name."""
    if path.is_file():
        return {"": hashlib.sha256(path.read_bytes()).hexdigest()}
    return {p.relative_to(path).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def listing(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def one_line(err: str) -> bool:
    return err.startswith("sinr: error: ") and err.count("\n") == 1 and "Traceback" not in err


# --------------------------------------------------------------------------------------------------
# --force replaces only what sinr compress wrote
# --------------------------------------------------------------------------------------------------
def _foreign_zip(p: Path) -> None:
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("holiday.jpg", b"\xff\xd8 not really a photo")


def _plain_zarr(p: Path) -> None:
    import zarr

    zarr.open_group(p, mode="w").attrs["project"] = "mine"
    (p / "notes.txt").write_text("years of work")


def _our_dir_plus(rel: str):
    def make(p: Path) -> None:
        compress_weights(p.parent / "a.pt", p, codec_config=OPTS, lossy="sinr", progress=False)
        (p / rel).parent.mkdir(parents=True, exist_ok=True)
        (p / rel).write_text("mine")
    return make


def _our_zip_plus(p: Path) -> None:
    compress_weights(p.parent / "a.pt", p, codec_config=OPTS, lossy="sinr", progress=False)
    with zipfile.ZipFile(p, "a") as zf:
        zf.writestr("notes.txt", "mine")


def _our_dir_with_link(p: Path) -> None:
    compress_weights(p.parent / "a.pt", p, codec_config=OPTS, lossy="sinr", progress=False)
    (p / "net.0.weight" / "c" / "9").symlink_to(p.parent / "a.pt")


def _link_to_store(p: Path) -> None:
    p.symlink_to(p.parent / "old.zarr")


def _zarr_file(p: Path) -> None:
    p.write_bytes(b"a file named like a store")


def _zip_folder(p: Path) -> None:
    p.mkdir()
    (p / "x").write_text("mine")


@pytest.mark.parametrize("name,make,why", [
    ("photos.zip", _foreign_zip, "zip without a Zarr group"),
    ("broken.zip", lambda p: p.write_bytes(b"PK\x03\x04 cut"), "not a readable zip"),
    ("ours-plus.zip", _our_zip_plus, "holds 'notes.txt'"),
    ("data.zarr", _plain_zarr, "does not mark it as written by sinr compress"),
    ("notes.zarr", _our_dir_plus("notes.txt"), "holds 'notes.txt'"),
    ("deep.zarr", _our_dir_plus("net.0.weight/c/README"), "holds 'net.0.weight/c/README'"),
    ("side.zarr", _our_dir_plus("other/zarr.json"), "holds 'other"),
    ("linked.zarr", _our_dir_with_link, "not a regular file or folder"),
    ("link.zarr", _link_to_store, "symbolic link"),
    ("file.zarr", _zarr_file, "a file, not a store folder"),
    ("folder.zip", _zip_folder, "not a file"),
])
def test_force_refuses_what_sinr_did_not_write(folder, capsys, name, make, why):
    dst = folder / name
    make(dst)
    before, names = fingerprint(dst), listing(folder)
    rc, out, err = run(capsys, "compress", folder / "b.pt", "-o", dst, "--force", "-q")
    assert rc == 1 and one_line(err), err
    assert "refusing to replace" in err and why in err and str(dst) in err
    assert fingerprint(dst) == before and listing(folder) == names


def test_force_replaces_our_stores_and_empty_folders(folder, capsys):
    (folder / "empty.zarr").mkdir()
    for name in ("old.zarr", "old.zip", "empty.zarr"):
        rc, _, err = run(capsys, "compress", folder / "b.pt", "-o", folder / name, "--force", "-q",
                         "--sparsity", "8", "--device", "cpu")
        assert rc == 0, err
        assert weights.inspect_store(folder / name).tensors[0].shape == [96, 64]
    assert listing(folder) == ["a.pt", "b.pt", "empty.zarr", "old.zarr", "old.zip"]
    mask = os.umask(0)
    os.umask(mask)
    assert (folder / "old.zarr").stat().st_mode & 0o777 == 0o777 & ~mask  # not mkdtemp's 0700
    assert (folder / "old.zip").stat().st_mode & 0o777 == 0o666 & ~mask


def test_without_force_nothing_is_replaced(folder, capsys):
    for name in ("old.zarr", "old.zip"):
        before = fingerprint(folder / name)
        rc, _, err = run(capsys, "compress", folder / "b.pt", "-o", folder / name, "-q")
        assert rc == 1 and one_line(err) and "already exists" in err
        assert fingerprint(folder / name) == before


def test_decompress_force_replaces_files_not_folders(folder, capsys):
    (folder / "restored.pt").mkdir()
    (folder / "restored.pt" / "keep").write_text("mine")
    rc, _, err = run(capsys, "decompress", folder / "old.zip", "-o", folder / "restored.pt", "--force", "-q")
    assert rc == 1 and one_line(err) and "it is a folder" in err
    assert (folder / "restored.pt" / "keep").read_text() == "mine"
    (folder / "r.pt").write_bytes(b"old")
    rc, _, err = run(capsys, "decompress", folder / "old.zip", "-o", folder / "r.pt", "--force", "-q")
    assert rc == 0, err
    assert list(torch.load(folder / "r.pt", weights_only=True)) == ["net.0.weight", "net.0.bias"]


# --------------------------------------------------------------------------------------------------
# interrupts and errors mid-write leave the previous output as it was
# --------------------------------------------------------------------------------------------------
def _raise_on_call(n: int, exc: BaseException, real):
    """A stand-in for ``real`` that raises ``exc`` on its ``n``-th call (1-based)."""
    calls = []

    def fake(*args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            raise exc
        return real(*args, **kwargs)
    return fake


@pytest.mark.parametrize("name", ["old.zarr", "old.zip"])
def test_interrupt_while_encoding(folder, capsys, monkeypatch, name):
    dst = folder / name
    before, names = fingerprint(dst), listing(folder)
    monkeypatch.setattr(weights, "CHUNK_BYTES", 32 * 64 * 4)  # b.pt's matrix: 3 chunks of 32 rows
    monkeypatch.setattr(weights, "_in_worker", _raise_on_call(2, KeyboardInterrupt(), weights._in_worker))
    rc, out, err = run(capsys, "compress", folder / "b.pt", "-o", dst, "--force", "--sparsity", "8")
    assert rc == 130 and err == "sinr: interrupted\n" and out == ""
    assert fingerprint(dst) == before and listing(folder) == names


def test_interrupt_while_zipping(folder, capsys, monkeypatch):
    dst = folder / "old.zip"
    before, names = fingerprint(dst), listing(folder)
    monkeypatch.setattr(zipfile.ZipFile, "write", _raise_on_call(2, KeyboardInterrupt(), zipfile.ZipFile.write))
    rc, _, err = run(capsys, "compress", folder / "b.pt", "-o", dst, "--force", "-q")
    assert rc == 130 and "interrupted" in err
    assert fingerprint(dst) == before and listing(folder) == names


def test_interrupt_between_the_renames_of_a_folder_swap(folder, capsys, monkeypatch):
    """The old store is renamed aside, then the new one fails to move in: the old one comes back."""
    dst = folder / "old.zarr"
    before, names = fingerprint(dst), listing(folder)
    monkeypatch.setattr(os, "rename", _raise_on_call(2, KeyboardInterrupt(), os.rename))
    rc, _, err = run(capsys, "compress", folder / "b.pt", "-o", dst, "--force", "-q")
    assert rc == 130 and "interrupted" in err
    assert fingerprint(dst) == before and listing(folder) == names


@pytest.mark.parametrize("name", ["old.zarr", "old.zip", "new.zarr"])
def test_disk_full_is_one_line_and_keeps_the_old_store(folder, capsys, monkeypatch, name):
    dst = folder / name
    before, names = (fingerprint(dst) if dst.exists() else None), listing(folder)

    def full(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
    monkeypatch.setattr(Path, "write_bytes", full)  # the SINR chunk files
    rc, out, err = run(capsys, "compress", folder / "b.pt", "-o", dst, "--force", "-q", "--sparsity", "8")
    assert rc == 1 and one_line(err) and out == ""
    assert f"cannot write {dst}: No space left on device" in err
    assert ("left as it was" in err) == (before is not None)
    assert listing(folder) == names and (before is None or fingerprint(dst) == before)


def test_decompress_errors_and_interrupts_keep_the_old_file(folder, capsys, monkeypatch):
    dst = folder / "r.pt"
    dst.write_bytes(b"the user's file")
    names = listing(folder)

    def full(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(torch, "save", full)
    rc, _, err = run(capsys, "decompress", folder / "old.zarr", "-o", dst, "--force", "-q")
    assert rc == 1 and one_line(err) and f"cannot write {dst}: No space left on device" in err
    assert dst.read_bytes() == b"the user's file" and listing(folder) == names

    def interrupted(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise KeyboardInterrupt
    monkeypatch.setattr(torch, "save", interrupted)
    rc, _, err = run(capsys, "decompress", folder / "old.zarr", "-o", dst, "--force", "-q")
    assert rc == 130 and dst.read_bytes() == b"the user's file" and listing(folder) == names


# --------------------------------------------------------------------------------------------------
# outputs that cannot be written: one line naming the path, exit 1 (also as root)
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command,src,out", [
    ("compress", "a.pt", "a-file/x.zarr"),
    ("compress", "a.pt", "a-file/x.zip"),
    ("decompress", "old.zarr", "a-file/x.pt"),
    ("compress", "a.pt", "missing/x.zarr"),
    ("decompress", "old.zip", "missing/x.safetensors"),
])
def test_output_folder_that_is_a_file_or_missing(folder, capsys, command, src, out):
    (folder / "a-file").write_text("mine")
    names = listing(folder)
    rc, _, err = run(capsys, command, folder / src, "-o", folder / out, "-q")
    assert rc == 1 and one_line(err), err
    assert ("is not a folder" in err) if "a-file" in out else ("does not exist" in err)
    assert listing(folder) == names and (folder / "a-file").read_text() == "mine"


@pytest.mark.parametrize("command,src,out,maker", [
    ("compress", "b.pt", "new.zarr", "mkdtemp"),
    ("compress", "b.pt", "old.zip", "mkstemp"),
    ("decompress", "old.zarr", "r.pt", "mkstemp"),
    ("decompress", "old.zip", "r.npz", "mkstemp"),
])
def test_unwritable_folder(folder, capsys, monkeypatch, command, src, out, maker):
    """Simulated (``chmod`` does not stop root): creating the temporary output fails with EACCES."""
    import tempfile

    def denied(*args, dir=None, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.path.join(dir, ".tmp"))
    monkeypatch.setattr(tempfile, maker, denied)
    names = listing(folder)
    force = ["--force"] if (folder / out).exists() else []
    rc, _, err = run(capsys, command, folder / src, "-o", folder / out, "-q", *force)
    assert rc == 1 and one_line(err), err
    assert f"cannot write {folder / out}: Permission denied" in err
    assert listing(folder) == names


# --------------------------------------------------------------------------------------------------
# signals: held back during renames, and a worker thread that does not delay them
# --------------------------------------------------------------------------------------------------
def test_signals_deferred_then_delivered():
    got = []
    with pytest.raises(KeyboardInterrupt), outputs._signals_deferred():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        got.append("finished the critical section")
    assert got == ["finished the critical section"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_worker_wait_is_interrupted_at_once():
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    t0 = time.perf_counter()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        outputs._in_worker(time.sleep, 5.0)  # stands for a long torch operation
    assert time.perf_counter() - t0 < 1.5
    with pytest.raises(ZeroDivisionError):  # worker errors reach the caller
        outputs._in_worker(lambda: 1 / 0)
    assert outputs._in_worker(sum, [1, 2]) == 3


def test_chunks_are_encoded_in_worker_threads(folder, monkeypatch):
    """Every chunk's encoding (a long C call on a large tensor, during which the main thread could not run
    a signal handler) runs in a worker thread, whatever the coding."""
    from sinr_codecs import outputs, weights

    threads = []
    real = outputs._in_worker

    def spy(fn, *args):
        def call(*a):
            threads.append(threading.current_thread() is threading.main_thread())
            return fn(*a)
        return real(call, *args)

    monkeypatch.setattr(weights, "_in_worker", spy)
    for lossy, dst in (("global", "g.zarr"), ("sinr", "s.zarr"), ("uniform", "u.zarr")):
        threads.clear()
        compress_weights(folder / "a.pt", folder / dst, codec_config={} if lossy != "sinr" else OPTS, lossy=lossy,
                         progress=False)
        assert threads and not any(threads), (lossy, threads)


def _signal_compress(tmp_path: Path, model: Path, sig: int, *, after: float = 0.5, budget: float = 2.0):
    """Run ``sinr compress model -o out.zip --force`` over an old store, send ``sig`` once the work has
    begun (its temporary folder exists) and ``after`` seconds more; return (exit status, seconds from
    the signal to the exit, stderr); check the old store and the folder are as before."""
    dst = tmp_path / "out.zip"
    compress_weights(tmp_path / "a.pt", dst, codec_config=OPTS, lossy="sinr", progress=False)
    before, names = fingerprint(dst), listing(tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "sinr_codecs.cli", "compress", str(model), "-o", str(dst),
                             "--force", "-q", "--device", "cpu", "--layout", "rows", "--sparsity", "0.25"],
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        while not any(p.name.endswith(".partial") for p in tmp_path.iterdir()):
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        time.sleep(after)
        assert proc.poll() is None, "the model compressed too fast to be interrupted"
        t0 = time.monotonic()
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
        waited = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert fingerprint(dst) == before
    assert listing(tmp_path) == names  # no .partial folder, no temporary zip
    return proc.returncode, waited, err


@pytest.fixture
def slow_model(folder) -> Path:
    """One 1024-wide matrix, coded at a fixed sparsity as whole rows (``--sparsity 0.25 --layout rows``): its
    dictionary, Gram matrix and OMP take far more than a few seconds, in single torch operations of seconds
    each (the Gram matrix alone, 8192 x 8192). The default coding would finish before the signal."""
    path = folder / "slow.pt"
    torch.save({"w": torch.from_numpy(np.random.default_rng(0).standard_normal((256, 1024)).astype(np.float32))},
               path)
    return path


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
@pytest.mark.parametrize("sig,status,message", [
    (signal.SIGINT, 130, "sinr: interrupted\n"),
    (signal.SIGTERM, 143, "sinr: interrupted (SIGTERM)\n"),
    (signal.SIGHUP, 129, "sinr: interrupted (SIGHUP)\n"),
])
def test_signal_stops_compress_within_two_seconds(folder, slow_model, sig, status, message):
    rc, waited, err = _signal_compress(folder, slow_model, sig)
    assert rc == status and err == message
    assert waited < 2.0, f"exited {waited:.2f} s after the signal"


@pytest.mark.slow
@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_ctrl_c_on_a_20m_parameter_model(folder):
    """20 matrices of 1024 x 1024 (21M parameters, 84 MB), interrupted 3 s into the work."""
    rng = np.random.default_rng(0)
    sd = {f"layers.{i}.weight": torch.from_numpy(rng.standard_normal((1024, 1024), dtype=np.float32) * 0.03)
          for i in range(20)}
    torch.save(sd, folder / "big.pt")
    rc, waited, err = _signal_compress(folder, folder / "big.pt", signal.SIGINT, after=3.0)
    assert rc == 130 and err == "sinr: interrupted\n" and waited < 2.0


def test_a_tensor_named_like_the_group_metadata(tmp_path, capsys, monkeypatch):
    torch.save({"zarr.json": smooth(4, 64), "c": torch.ones(3)}, tmp_path / "odd.pt")
    monkeypatch.chdir(tmp_path)  # a relative output path
    rc, _, err = run(capsys, "compress", "odd.pt", "-o", "odd.zarr", "-q")
    assert rc == 0, err
    assert [t.name for t in weights.inspect_store("odd.zarr").tensors] == ["zarr.json", "c"]
    rc, _, err = run(capsys, "decompress", "odd.zarr", "-o", "odd-back.pt", "-q")
    assert rc == 0 and torch.equal(torch.load("odd-back.pt", weights_only=True)["c"], torch.ones(3))
