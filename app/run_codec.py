"""A finished run as bytes: how runs travel from a build worker and sit in the run store.

TODO(issue 11, compact run record): swap these three for the record's own calls once
mmu_model/run.py has them: encode_run -> Run.to_bytes(), decode_run -> Run.from_bytes(),
run_nbytes -> Run.nbytes. Until then a run is pickled (which works for the mypyc-compiled
model too: tests/api/test_run_store.py checks it) and its size in memory is estimated.
Pickle runs code named by the data: the store is as trusted as the SQLite file beside it.
"""

from __future__ import annotations

import pickle

from mmu_model import Run

__all__ = ["BYTES_PER_EVENT", "decode_run", "encode_run", "run_nbytes"]

# Measured with tracemalloc around decode_run: 999-1,146 bytes per recorded event on the
# built-ins (teaching-small 0.4 MB, large-10k 129 MB, boot-loop 159 MB, populated-16g
# 226 MB); the rest of a run (final stats, per-boot rows) is a few KB.
BYTES_PER_EVENT = 1_200
_RUN_OVERHEAD = 16_384


def encode_run(run: Run) -> bytes:
    return pickle.dumps(run, protocol=pickle.HIGHEST_PROTOCOL)


def decode_run(data: bytes) -> Run:
    run = pickle.loads(data)  # our own store: see the module docstring
    if not isinstance(run, Run):
        raise ValueError(f"not a run: {type(run).__name__}")
    return run


def run_nbytes(run: Run) -> int:
    """What the run holds in memory, in bytes (estimated from its event count)."""
    return _RUN_OVERHEAD + BYTES_PER_EVENT * run.n_events
