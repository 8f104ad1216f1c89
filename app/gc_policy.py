"""How the server's cyclic garbage collector runs.

CPython collects its youngest generation after every 700 container objects allocated (net
of those freed). A cold first view of a large run allocates a few hundred thousand (the
layout's tuples, a step's page views), and with the defaults that set off about 1,300
young, 120 middle and 5 full collections, each full one walking the server's ~300k live
objects: 0.5-0.8 s of the 100k-page spec's cold page, out of about 1.9 s of the server's
CPU time (measured with gc.callbacks and process_time). The server makes few reference
cycles (runs are flat arrays), so young collections can wait for YOUNG_THRESHOLD
allocations: about 90 young, 8 middle and one full collection remain, and the server's CPU
for that page drops to about 1.5 s. The older generations keep their default ratios.

What is alive once the app has started (the imported modules, the app, its routes and
templates: ~300k objects) lives as long as the server, so it is frozen out of the
collector's walks (gc.freeze), once per process: a full collection then walks what the
requests made, and the cold page's server CPU is about 1.25 s.
"""

from __future__ import annotations

import gc

__all__ = ["YOUNG_THRESHOLD", "tune_the_collector"]

YOUNG_THRESHOLD = 10_000
_frozen = False


def tune_the_collector() -> None:
    """Young collections every YOUNG_THRESHOLD allocations; what is alive now frozen (the
    first call in a process only: later ones would freeze what requests left behind)."""
    global _frozen
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
    if not _frozen:
        _frozen = True
        gc.freeze()
