"""The `kvm-shadow-viz` command (app/cli.py) and the model CLI's --version and progress."""

from __future__ import annotations

import io
import json
import os
from importlib.metadata import version
from typing import Any

import pytest

from app import cli
from mmu_model import cli as model_cli
from mmu_model.run import BootStats


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(("argv", "says"), [
    (["serve", "--port", "0"], "port must be 1-65535"),
    (["serve", "--port", "８０"], "port must be 1-65535"),  # noqa: RUF001 - full-width digits
    (["serve", "--workers", "0"], "workers must be 1-64"),
    (["serve", "--public-url", "ftp://x"], "MMU_VIZ_PUBLIC_URL must be an http(s) URL"),
    (["serve", "--embed-origin", "course.example"], "is not * or an http(s) origin"),
    (["bogus"], "invalid choice"),
    ([], "required"),
])
def test_bad_arguments_exit_2_with_one_line(capsys: pytest.CaptureFixture[str],
                                            argv: list[str], says: str) -> None:
    code, out, err = _run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert says in err
    assert len(err.strip().splitlines()) == 1


def test_version_is_the_installed_distribution_s(capsys: pytest.CaptureFixture[str]) -> None:
    """--version reads importlib.metadata: the one version, pyproject.toml's."""
    for main in (cli.main, model_cli.main):
        with pytest.raises(SystemExit) as exit_info:
            main(["--version"])
        assert exit_info.value.code == 0
        assert capsys.readouterr().out.strip() == f"kvm-shadow-viz {version('kvm-shadow-viz')}"


def test_model_commands_run_under_the_one_command(capsys: pytest.CaptureFixture[str]) -> None:
    """`kvm-shadow-viz simulate` is `python -m mmu_model simulate`: same JSON."""
    args = ["simulate", "--scenario", "teaching-small", "--boots", "2", "--json"]
    assert cli.main(args) == 0
    ours = json.loads(capsys.readouterr().out)
    assert model_cli.main(args) == 0
    assert json.loads(capsys.readouterr().out) == ours
    assert [b["boot"] for b in ours["per_boot"]] == [1, 2]


def test_serve_passes_its_flags_to_the_app_through_the_environment(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """serve sets the variables app.settings and app.security read, and binds as told."""
    seen: dict[str, Any] = {}
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: seen.update(app=app, **kw))
    # serve writes os.environ (uvicorn's workers read it): give it a copy, undone after,
    # so no later test (nor the browser tests' server) inherits these values.
    monkeypatch.setattr(os, "environ", {k: v for k, v in os.environ.items()
                                        if not k.startswith("MMU_VIZ_")})
    code = cli.main(["serve", "--host", "10.0.0.5", "--port", "9000", "--db",
                     str(tmp_path / "t.sqlite3"), "--public-url", "https://viz.example.org",
                     "--embed-origin", "https://course.example.edu", "--workers", "2"])
    assert code == 0
    assert seen["app"] == "app.main:create_app"
    assert (seen["host"], seen["port"], seen["workers"], seen["factory"]) == (
        "10.0.0.5", 9000, 2, True)
    assert os.environ["MMU_VIZ_DB"] == str(tmp_path / "t.sqlite3")
    assert os.environ["MMU_VIZ_PUBLIC_URL"] == "https://viz.example.org"
    assert os.environ["MMU_VIZ_EMBED_ORIGINS"] == "https://course.example.edu"
    # a specific address to bind is a name clients use: it is allowed, with localhost
    assert os.environ["MMU_VIZ_ALLOWED_HOSTS"].split(",")[0] == "10.0.0.5"


def _boot(n: int) -> BootStats:
    return BootStats(boot=n, shadow_pages=68 * n, unsync=64 * n, orphans=66 * n,
                     orphans_unsync=64 * n, rmap_entries=0, hash_walked=0, action_step=0)


def test_progress_line_per_boot_rewrites_itself_and_ends_the_line() -> None:
    """Each boot rewrites the line (carriage return, clear to end); the last ends it."""
    out = io.StringIO()
    show = model_cli._progress_printer(out)
    show(_boot(1), 2)
    show(_boot(2), 2)
    text = out.getvalue()
    assert text.count("\r") == 2
    assert "boot 1/2: 68 shadow pages, 64 unsync, 66 orphans" in text
    assert "boot 2/2: 136 shadow pages, 128 unsync, 132 orphans" in text
    assert text.endswith("\n")


def test_no_progress_when_not_a_terminal_or_asked_to_be_quiet(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Under pytest stderr is no terminal: nothing but the result; a tty with --json or
    --quiet is quiet too, and a tty alone gets the progress line."""
    assert model_cli.main(["simulate", "--scenario", "teaching-small", "--boots", "2"]) == 0
    assert capsys.readouterr().err == ""
    monkeypatch.setattr("sys.stderr.isatty", lambda: True, raising=False)
    for flags, shown in ((["--json"], False), (["--quiet"], False), ([], True)):
        assert model_cli.main(["simulate", "--scenario", "teaching-small", "--boots", "2",
                               *flags]) == 0
        assert ("boot 2/2" in capsys.readouterr().err) is shown, flags


def test_graph_prints_the_step_s_analyses(capsys: pytest.CaptureFixture[str]) -> None:
    """`graph` reads the step the model gives: one node per shadow page of that snapshot.

    teaching-small's first orphan appears at step 7 (README); no root reaches it, so it is
    among the stranded pages.
    """
    from mmu_model import run_named

    snap = run_named("teaching-small").snapshot(7)
    code, out, _ = _run(capsys, "graph", "--scenario", "teaching-small", "--step", "7")
    assert code == 0
    got = json.loads(out)
    assert got["pages"] == len(snap.pages)
    assert got["orphans"] == sorted(p.id for p in snap.pages if p.orphan)
    assert set(got["orphans"]) <= set(got["stranded"])
    code, out, _ = _run(capsys, "graph", "--step", "7", "--format", "dot")
    assert out.startswith("digraph shadow_mmu_step_7 {")


@pytest.mark.parametrize(("argv", "says"), [
    (["graph", "--step", "99999"], "out of range"),
    (["graph", "--scenario", "nope"], "unknown scenario"),
    (["graph", "--step", "-1"], "whole number"),
    (["graph", "--trace", "/nonexistent.trace"], "cannot read"),
])
def test_graph_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str],
                                    says: str) -> None:
    code, _out, err = _run(capsys, *argv)
    assert code == 2
    assert says in err
