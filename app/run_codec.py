"""A finished run as bytes: how runs travel from a build worker and sit in the run store.

The compact run record's own format (mmu_model/run.py: Run.to_bytes(), Run.from_bytes(),
Run.nbytes; a versioned binary file with a CRC-32, RunFormatError for anything else), so
this module only names what the web layer uses. No code runs on decoding: a corrupt or
foreign file is an error, and the store drops it.
"""

from __future__ import annotations

from mmu_model import Run

__all__ = ["decode_run", "encode_run", "run_nbytes"]


def encode_run(run: Run) -> bytes:
    return run.to_bytes()


def decode_run(data: bytes) -> Run:
    return Run.from_bytes(data)


def run_nbytes(run: Run) -> int:
    """What the run holds in memory, in bytes (measured from its record's columns)."""
    return run.nbytes
