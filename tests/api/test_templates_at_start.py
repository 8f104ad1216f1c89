"""Templates are compiled when the server starts, not by the first request that renders
them (Renderer.compile_all from the app's lifespan)."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import jinja2
import pytest

from app.main import create_app
from app.settings import Settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[2]


def _compiled(env: jinja2.Environment) -> set[str]:
    # jinja2 caches a compiled template under (a weak reference to its loader, its name).
    return {name for _, name in env.cache} if env.cache is not None else set()


def test_every_template_is_compiled_once_the_server_has_started(tmp_path: Path) -> None:
    """Before any request, the environment's cache holds every template of templates/
    (13 files today: whatever is there, listed from the directory itself)."""
    on_disk = {p.name for p in (ROOT / "templates").glob("*.jinja")}
    app = create_app(Settings(db_path=tmp_path / "traces.sqlite3", warm_builtins=False))
    env = app.state.services.renderer.env
    assert _compiled(env) == set()  # created, not started: nothing compiled yet
    with TestClient(app):
        assert _compiled(env) == on_disk


def test_a_template_that_does_not_compile_stops_the_start(tmp_path: Path) -> None:
    """A broken template fails the start, naming the file, instead of the first page."""
    root = tmp_path / "checkout"
    shutil.copytree(ROOT / "templates", root / "templates")
    shutil.copytree(ROOT / "static", root / "static")
    (root / "templates" / "_help.html.jinja").write_text("{% if %}\n")
    app = create_app(Settings(db_path=tmp_path / "traces.sqlite3", root=root,
                              warm_builtins=False))
    with pytest.raises(jinja2.TemplateSyntaxError) as raised, TestClient(app):
        pass
    assert raised.value.name == "_help.html.jinja"
