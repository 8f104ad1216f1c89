"""Command line: ``python -m mmu_model {scenarios,replay,simulate}``.

A contract other tools script against: ``--json`` prints one JSON object; bad arguments or
input exit with status 2 and one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from . import run_named
from .exceptions import MmuModelError
from .fixes import DEFAULT_FIXES, FIXES, resolve_fixes
from .replay import replay_trace
from .run import Run
from .scenario import ScenarioSpec, get_scenario, list_scenarios
from .simulate import run_scenario
from .stats import DISPLAY_ORDER

__all__ = ["main"]


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m mmu_model",
                     description="Model of KVM's shadow MMU leaking unsync shadow pages.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("scenarios", help="list the built-in scenarios").add_argument(
        "--json", action="store_true")

    def fix_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--fix", action="append", default=[], metavar="NAME",
                       help=f"turn a fix on ({', '.join(FIXES)})")
        p.add_argument("--no-fix", action="append", default=[], metavar="NAME",
                       help="turn a fix off")
        p.add_argument("--json", action="store_true", help="print one JSON object")

    replay = sub.add_parser("replay", help="replay a kvm_mmu_track_write debug trace")
    replay.add_argument("file", help="trace file ('-' for standard input)")
    replay.add_argument("--lenient", action="store_true", help="skip malformed lines")
    fix_args(replay)

    sim = sub.add_parser("simulate", help="simulate a scenario")
    sim.add_argument("--scenario", default="boot-loop-bottom-up", metavar="NAME")
    for info in ScenarioSpec.FIELDS:
        flag = "--" + info.name.replace("_", "-")
        sim.add_argument(flag, dest=info.name, default=None, metavar="N"
                         if info.kind != "choice" else "|".join(info.choices), help=info.help)
    fix_args(sim)
    return parser


def _fmt_table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        lines.append("  ".join(c.rjust(w) if i else c.ljust(w)
                               for i, (c, w) in enumerate(zip(row, widths, strict=True))))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _result(run: Run, name: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "scenario": name,
        "kind": run.kind,
        "fixes": list(run.fixes),
        "stats": dict(run.final_stats),
        "orphans": run.orphans.as_dict(),
        "events": run.n_events,
        "actions": run.n_actions,
    }
    if run.spec is not None:
        out["spec"] = run.spec.to_mapping()
        out["quota"] = run.spec.n_max_mmu_pages
    if run.kind == "simulate":
        out["per_boot"] = [
            {"boot": b.boot, "shadow_pages": b.shadow_pages, "unsync": b.unsync,
             "orphans": b.orphans, "orphans_unsync": b.orphans_unsync,
             "rmap_entries": b.rmap_entries, "hash_walked": b.hash_walked}
            for b in run.per_boot
        ]
    if run.replay is not None:
        out["discrepancies"] = [
            {"line": d.lineno, "gfn": hex(d.gfn), "index": d.index, "level": d.level,
             "trace_flood": d.trace_flood, "model_flood": d.model_flood}
            for d in run.replay.discrepancies
        ]
        out["notes"] = list(run.replay.notes)
        out["warnings"] = list(run.replay.warnings)
    return out


def _print_human(result: dict[str, Any]) -> None:
    head = result["scenario"] or "trace"
    print(f"{head}: {result['events']} events in {result['actions']} guest actions; "
          f"fixes: {', '.join(result['fixes']) or 'none'}")
    stats = result["stats"]
    print()
    print(_fmt_table([("stat", "value"), *((k, str(stats[k])) for k in DISPLAY_ORDER)]))
    o = result["orphans"]
    levels = ", ".join(f"l{k}: {v}" for k, v in o["by_level"].items()) or "none"
    print(f"\norphans: {o['total']} ({o['unsync']} unsync; by level {levels}); unreachable "
          f"from any valid root: {o['unreachable']} ({o['unreachable_unsync']} unsync)")
    boots = result.get("per_boot", [])
    if len(boots) > 1:
        step = max(1, len(boots) // 10)
        shown = [b for b in boots if b["boot"] % step == 0 or b["boot"] in (1, len(boots))]
        print()
        print(_fmt_table([("boot", "shadow pages", "unsync", "orphans", "unsync orphans",
                           "rmap entries", "hash walked"),
                          *((str(b["boot"]), str(b["shadow_pages"]), str(b["unsync"]),
                             str(b["orphans"]), str(b["orphans_unsync"]),
                             str(b["rmap_entries"]), str(b["hash_walked"])) for b in shown)]))
    for d in result.get("discrepancies", []):
        model = "no shadow page" if d["model_flood"] is None else d["model_flood"]
        print(f"discrepancy: line {d['line']}: {d['gfn']} entry {d['index']} level "
              f"{d['level']}: trace flood {d['trace_flood']}, model {model}")
    for note in result.get("notes", []):
        print(f"note: {note}")
    for warning in result.get("warnings", []):
        print(f"warning: {warning}")


def _run(args: argparse.Namespace) -> int:
    if args.command == "scenarios":
        infos = list_scenarios()
        if args.json:
            print(json.dumps([{"name": i.name, "title": i.title, "kind": i.kind,
                               "description": i.description,
                               "spec": i.spec.to_mapping() if i.spec else None}
                              for i in infos], indent=2))
        else:
            print(_fmt_table([("name", "kind", "description"),
                              *((i.name, i.kind, i.description) for i in infos)]))
        return 0
    if args.command == "replay":
        fixes = resolve_fixes(args.fix, args.no_fix)
        try:
            if args.file == "-":
                text = sys.stdin.read()
            else:
                with open(args.file, encoding="utf-8") as fh:
                    text = fh.read()
        except (OSError, UnicodeDecodeError) as err:
            raise UsageError(f"cannot read trace {args.file!r}: "
                             f"{getattr(err, 'strerror', None) or err}") from None
        run = replay_trace(text, fixes=fixes, lenient=args.lenient, record=False)
        result = _result(run, None)
    else:
        info = get_scenario(args.scenario)
        base = info.spec.fixes if info.spec is not None else DEFAULT_FIXES
        fixes = resolve_fixes(args.fix, args.no_fix, base=base)
        overrides = {f.name: getattr(args, f.name) for f in ScenarioSpec.FIELDS
                     if getattr(args, f.name) is not None}
        if info.kind == "replay":
            if overrides:
                raise UsageError(f"scenario {info.name} replays a trace; "
                                 f"--{next(iter(overrides)).replace('_', '-')} does not apply")
            run = run_named(info.name, fixes=fixes, record=False)
        else:
            assert info.spec is not None
            spec = ScenarioSpec.from_mapping(overrides, base=info.spec.replace(fixes=fixes))
            run = run_scenario(spec, record=False)
        result = _result(run, info.name)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print_human(result)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _build_parser().parse_args(argv)
        return _run(args)
    except UsageError as err:
        print(str(err), file=sys.stderr)
        return 2
    except MmuModelError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. piped into head
        sys.stderr.close()
        return 0
