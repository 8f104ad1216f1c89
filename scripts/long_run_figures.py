"""The long-run figures of README's model section: a boot loop with and without a fix.

For boot-loop-bottom-up over 1,000 boots (by default), with and without track-write-zap,
prints a Markdown table of what the CLI's per-boot JSON says after boots 100, 500 and
1,000: `mmu_shadow_pages`, hash-chain entries walked during that boot, unsync orphans
then, and how many unsync orphans that boot added (the level-1 leak per boot).  The same
numbers come from

    python -m mmu_model simulate --scenario boot-loop-bottom-up --boots 1000 --json \
        [--fix track-write-zap]

(`per_boot`); this script only picks the rows.  Not a benchmark: the figures are the
model's counts, the same on every machine.
Usage: python scripts/long_run_figures.py [--boots N] [--allocator NAME] [--fix NAME]
"""

from __future__ import annotations

import argparse

from mmu_model import get_scenario, run_scenario
from mmu_model.constants import L1_ALLOCATORS
from mmu_model.fixes import FIXES


def rows(boots: int, allocator: str, fix: str) -> list[str]:
    base = get_scenario("boot-loop-bottom-up").spec
    assert base is not None
    out = []
    for fixes, label in ((base.fixes, "none"), (base.fixes | {fix}, fix)):
        spec = base.replace(boots=boots, l1_allocator=allocator, fixes=frozenset(fixes))
        per_boot = run_scenario(spec, record=False).per_boot
        for boot in sorted({min(100, boots), min(500, boots), boots}):
            now, before = per_boot[boot - 1], per_boot[boot - 2] if boot > 1 else None
            added = now.orphans_unsync - (before.orphans_unsync if before else 0)
            out.append(f"| {label} | {boot:,} | {now.shadow_pages:,} | {now.hash_walked:,} "
                       f"| {now.orphans_unsync:,} | {added:,} |")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boots", type=int, default=1000)
    parser.add_argument("--allocator", choices=L1_ALLOCATORS, default="lifo")
    parser.add_argument("--fix", choices=sorted(FIXES), default="track-write-zap")
    args = parser.parse_args()
    if args.boots < 1:
        parser.error("--boots must be at least 1")
    print(f"boot-loop-bottom-up, {args.boots:,} boots, L1 allocator {args.allocator}")
    print()
    print("| fix | after boot | `mmu_shadow_pages` | hash walked in that boot "
          "| unsync orphans | unsync orphans added by that boot |")
    print("|---|---|---|---|---|---|")
    for row in rows(args.boots, args.allocator, args.fix):
        print(row)


if __name__ == "__main__":
    main()
