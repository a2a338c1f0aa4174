"""torch's intra-op thread count, shared by the CPU work that runs its own parallelism.

OMP runs chunks in a pool of threads and decoding runs inside Zarr's chunk threads; both use torch
kernels with one thread each, because multi-threaded kernels stall at a barrier whenever one of their
threads is preempted (measured: a CSR product decoding blocks of 32 ran 6x slower with two kernel
threads than with one on a busy 2-core machine). torch has one process-wide thread count, so
:func:`single_threaded_kernels` sets it to 1 while any such work runs and restores it after the last
one ends; :func:`configured_threads` is the count the user configured meanwhile.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["configured_threads", "single_threaded_kernels"]

_lock = threading.Lock()
_users = 0
_saved = 1


@contextmanager
def single_threaded_kernels() -> Iterator[None]:
    """Set torch's intra-op threads to 1 for the block (process-wide; nested and concurrent uses share
    one saved value, restored when the last one ends)."""
    global _users, _saved
    with _lock:
        if _users == 0:
            _saved = torch.get_num_threads()
            torch.set_num_threads(1)
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                torch.set_num_threads(_saved)


def configured_threads() -> int:
    """torch's thread count as configured by the user (inside :func:`single_threaded_kernels` it reads 1)."""
    with _lock:
        return _saved if _users else torch.get_num_threads()
