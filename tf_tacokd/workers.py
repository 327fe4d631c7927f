"""Pools of spawned worker processes that compute with one thread each (N workers on N cores
without oversubscribing them).

Spawned, never forked: a forked child of a process that holds TensorFlow's (or OpenMP's)
thread pools can deadlock. The thread settings are environment variables, set while the pool
starts its processes (they inherit them) and restored afterwards in this process.

Example:
    >>> with single_thread_pool(2) as pool:  # doctest: +SKIP
    ...     sizes = list(pool.imap_unordered(measure, tasks))
"""

from __future__ import annotations

import multiprocessing as mp
import multiprocessing.pool
import os

__all__ = ["WORKER_THREADS", "single_thread_pool"]

#: what each worker is given: one thread for TensorFlow, OpenMP, BLAS and numba
WORKER_THREADS = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": "1",
                  "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}


def single_thread_pool(processes: int, maxtasksperchild: int | None = None) -> multiprocessing.pool.Pool:
    """A spawn-context :class:`multiprocessing.pool.Pool` whose workers use one thread each.
    Use it as a context manager: leaving the block (an error, Ctrl-C) terminates the workers.

    Args:
        processes: worker processes.
        maxtasksperchild: tasks before a worker is replaced (1: a fresh process per task, so
            that none accumulates models).
    """
    saved = {k: os.environ.get(k) for k in WORKER_THREADS}
    os.environ.update(WORKER_THREADS)  # inherited by the spawned workers
    try:
        return mp.get_context("spawn").Pool(processes, maxtasksperchild=maxtasksperchild)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
