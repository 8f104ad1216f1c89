"""The `kvm-shadow-viz` command: `serve` the visualizer, or run the model's own commands.

    kvm-shadow-viz serve [--host H] [--port P] [--db FILE] [--public-url URL] ...
    kvm-shadow-viz simulate|replay|scenarios ...   (python -m mmu_model, same options)
    kvm-shadow-viz graph [--scenario NAME | --trace FILE] [--step N] [--sp ID]
                         [--format json|graphml|dot]
    kvm-shadow-viz --version

Bad arguments exit with status 2 and one line on stderr, as the model's CLI does.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from mmu_model import cli as model_cli
from mmu_model.cli import Parser, UsageError, exit_code

__all__ = ["main"]

PROG = "kvm-shadow-viz"
_MODEL_COMMANDS = ("simulate", "replay", "scenarios")


def _in_range(what: str, low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from `low` to `high`."""
    def parse(raw: str) -> int:
        if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
            raise argparse.ArgumentTypeError(f"{what} must be {low}-{high}, got {raw!r}")
        return int(raw)
    return parse


_port = _in_range("port", 1, 65535)
_workers = _in_range("workers", 1, 64)


def _whole(raw: str) -> int:
    if not (raw.isascii() and raw.isdigit()):
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {raw!r}")
    return int(raw)


def _build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog=PROG, description="Interactive visualizer of KVM shadow paging "
                     "trees, and the model's command line.")
    parser.add_argument("--version", action="version",
                        version=f"{PROG} {model_cli.package_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    serve = sub.add_parser("serve", help="serve the visualizer over HTTP")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to bind (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=_port, default=8000, help="TCP port (default 8000)")
    serve.add_argument("--db", type=Path, metavar="FILE",
                       help="SQLite file of uploaded traces (env MMU_VIZ_DB; default "
                       "./data/traces.sqlite3)")
    serve.add_argument("--public-url", metavar="URL",
                       help="base URL share links use (env MMU_VIZ_PUBLIC_URL)")
    serve.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                       help="a Host name the server answers; repeat for more, '*' for any "
                       "(env MMU_VIZ_ALLOWED_HOSTS)")
    serve.add_argument("--embed-origin", action="append", default=[], metavar="ORIGIN",
                       help="an origin allowed to frame embed=1 views; repeat for more "
                       "(env MMU_VIZ_EMBED_ORIGINS; default any)")
    serve.add_argument("--workers", type=_workers, default=1,
                       help="worker processes (default 1; each keeps its own run cache)")
    serve.add_argument("--proxy", action="store_true",
                       help="trust X-Forwarded-For/-Proto from any address (behind a "
                       "reverse proxy that sets them)")
    serve.add_argument("--log-level", default="info",
                       choices=["critical", "error", "warning", "info", "debug"])
    graph = sub.add_parser("graph", help="a step's shadow-page DAG: analyses (JSON), "
                           "GraphML or DOT")
    source = graph.add_mutually_exclusive_group()
    source.add_argument("--scenario", default="teaching-small", metavar="NAME")
    source.add_argument("--trace", type=Path, metavar="FILE", help="a trace file to replay")
    graph.add_argument("--step", type=_whole, metavar="N",
                       help="action step (default: the run's opening step)")
    graph.add_argument("--sp", type=_whole, metavar="ID",
                       help="a shadow page: add its subtree and blast radius")
    graph.add_argument("--format", choices=["json", "graphml", "dot"], default="json")
    for name in _MODEL_COMMANDS:
        sub.add_parser(name, help=f"the model's {name} (see {PROG} {name} --help)",
                       add_help=False)
    return parser


def _serve_env(args: argparse.Namespace) -> dict[str, str]:
    """The environment the app reads (app.settings, app.security), from the flags."""
    from app.security import Hosting

    env: dict[str, str] = {}
    if args.db is not None:
        env["MMU_VIZ_DB"] = str(args.db.resolve())
    hosts = list(args.allowed_host)
    if not hosts and os.environ.get("MMU_VIZ_ALLOWED_HOSTS") is None:
        try:
            bound = ipaddress.ip_address(args.host)
        except ValueError:
            hosts = [args.host]  # a name to bind is a name clients use
        else:
            if not bound.is_unspecified and not bound.is_loopback:
                hosts = [args.host]
        if hosts:
            hosts = [*hosts, "localhost", "127.0.0.1", "::1"]
    if hosts:
        env["MMU_VIZ_ALLOWED_HOSTS"] = ",".join(hosts)
    if args.public_url:
        env["MMU_VIZ_PUBLIC_URL"] = args.public_url
    if args.embed_origin:
        env["MMU_VIZ_EMBED_ORIGINS"] = " ".join(args.embed_origin)
    merged = {**os.environ, **env}
    try:
        Hosting.from_env(merged)  # checked as the app will read it
    except ValueError as exc:
        raise UsageError(f"{PROG} serve: {exc}") from None
    return env


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    os.environ.update(_serve_env(args))
    allowed = os.environ.get("MMU_VIZ_ALLOWED_HOSTS")
    if args.host in ("0.0.0.0", "::") and not (
            allowed or os.environ.get("MMU_VIZ_PUBLIC_URL")):
        print(f"{PROG}: listening on all addresses, but only localhost names are allowed "
              "Host headers: add --allowed-host NAME (or --public-url URL) for the names "
              "clients use", file=sys.stderr)
    uvicorn.run("app.main:create_app", factory=True, host=args.host, port=args.port,
                workers=args.workers, log_level=args.log_level, proxy_headers=True,
                forwarded_allow_ips="*" if args.proxy else None)
    return 0


def _graph(args: argparse.Namespace) -> int:
    import json

    from app.graph_export import analyses, dot_lines, graphml_lines
    from mmu_model import replay_trace, run_named

    if args.trace is not None:
        try:
            text = args.trace.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise UsageError(f"{PROG} graph: cannot read {args.trace}: "
                              f"{getattr(err, 'strerror', None) or err}") from None
        run = replay_trace(text)
    else:
        run = run_named(args.scenario)
    snap = run.snapshot(run.default_step if args.step is None else args.step)
    if args.format == "json":
        print(json.dumps(analyses(snap, args.sp), indent=2))
    else:
        for line in (graphml_lines if args.format == "graphml" else dot_lines)(snap):
            print(line)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in _MODEL_COMMANDS:
        return model_cli.main(argv, prog=PROG)

    def command() -> int:
        args = _build_parser().parse_args(argv)
        return _graph(args) if args.command == "graph" else _serve(args)

    return exit_code(command)


if __name__ == "__main__":
    sys.exit(main())
