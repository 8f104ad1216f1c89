"""How often the server's cyclic garbage collector runs.

CPython collects its youngest generation after every 700 container objects allocated (net
of those freed). A cold first view of a large run allocates a few hundred thousand (the
layout's tuples, a step's page views), and with the defaults that set off about 1,300
young, 120 middle and 5 full collections, each full one walking the server's ~300k live
objects: 0.5-0.8 s of the 100k-page spec's cold page, out of about 1.9 s of the server's
CPU time (measured with gc.callbacks and process_time). The server makes few reference
cycles (runs are flat arrays), so young collections can wait for YOUNG_THRESHOLD
allocations: about 90 young and one full collection remain, and the server's CPU for that
page drops to what it is with the collector off (about 1.2 s). The older generations keep
their default ratios.
"""

from __future__ import annotations

import gc

__all__ = ["YOUNG_THRESHOLD", "collect_less_often"]

YOUNG_THRESHOLD = 10_000


def collect_less_often() -> None:
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
