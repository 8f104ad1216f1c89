"""One declaration per view parameter: the OpenAPI, the URL writer and the scenario form all
come from ViewState's fields (app/viewstate.py), so they list the same names.

Every expected name below is found by walking ViewState.model_fields, never from a list
written here: a field another change adds shows up in all three, or these tests fail.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from app.panels import form_context
from app.rendering import Renderer
from app.viewstate import FIND_PATTERN, SPEC_FIELDS, VIEW_PARAMS, ViewState, parse_query
from mmu_model import FIXES

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
VIEW_ROUTES = ("/api/snapshot", "/api/layout", "/api/events", "/api/boots.csv")


def declared_names(fields: list[str] | None = None) -> list[str]:
    """Query names of ViewState's fields in declaration order; `params` stands for every
    ScenarioSpec field (each spec override is its own parameter)."""
    out: list[str] = []
    for name in fields if fields is not None else list(ViewState.model_fields):
        out.extend(SPEC_FIELDS if VIEW_PARAMS[name].parse == "spec" else (name,))
    return out


def sample(name: str) -> Any:
    """A value of field `name` other than its default, found from its declaration."""
    info = ViewState.model_fields[name]
    param = VIEW_PARAMS[name]
    schema = param.query_schema
    if param.parse == "fixes":
        return frozenset({next(iter(FIXES))})
    if param.parse == "open":
        return ((1, 1),)
    if param.parse == "spec":
        return (("boots", "2"),)  # teaching-small booted twice: a valid spec
    if "enum" in schema:
        others = [v for v in schema["enum"] if v != info.default]
        return others[0] if others else info.default  # v has one value: it is always written
    if schema.get("type") == "boolean":
        return not info.default
    bounds = next((s for s in schema.get("anyOf", [schema]) if s.get("type") == "integer"), None)
    if bounds is not None:
        return bounds.get("minimum", 0) + 1
    pattern = next((m.pattern for m in info.metadata if hasattr(m, "pattern")), None)
    if pattern == r"^[0-9a-f]{64}$":
        return "ab" * 32
    if pattern == FIND_PATTERN:
        return "#1"  # a shadow page id, as the search box takes it
    if pattern is None and schema.get("type") == "string":
        return "teaching-small"
    raise AssertionError(f"ViewState.{name}: teach sample() a value of its declared schema")


def every_field_set(*, without: str) -> ViewState:
    """A view with every field away from its default; `trace` and `scenario` exclude each
    other (a trace is replayed as is), so one of them (and, for scenario, params) is left."""
    leave = {"trace"} if without == "trace" else {"scenario", "params"}
    return ViewState.model_validate(
        {name: sample(name) for name in ViewState.model_fields if name not in leave})


def test_url_writer_writes_every_declared_parameter_in_declaration_order() -> None:
    """With every field set, the canonical URL names each field once, in the fields' order
    (step_grain is written because its sample differs from grain's; base because compare
    is on)."""
    for without in ("trace", "scenario"):
        state = every_field_set(without=without)
        left = {"trace"} if without == "trace" else {"scenario", "params"}
        names = [k for k, _ in state.query_pairs()]
        expected = declared_names([n for n in ViewState.model_fields if n not in left])
        expected = [n for n in expected if n not in SPEC_FIELDS or n == "boots"]
        assert names == expected


def test_url_writer_output_reads_back_as_the_same_view() -> None:
    """parse_query() is the writer's inverse: what query_pairs() writes reads back equal."""
    for without in ("trace", "scenario"):
        state = every_field_set(without=without)
        assert parse_query(state.query_pairs())[0] == state


def test_the_url_is_the_standard_form_encoding_of_the_canonical_pairs() -> None:
    """to_query() quotes each name and value once per process (a page builds a hundred URLs
    of one view): it must still be exactly urlencode() of query_pairs(), commas, colons
    and '#' of the fix sets, open groups and searches included, with and without omits."""
    from urllib.parse import urlencode

    for without in ("trace", "scenario"):
        state = every_field_set(without=without)
        for omit in ((), ("step",), ("find", "sp", "stop")):
            assert state.to_query(omit) == urlencode(state.query_pairs(omit))
            assert state.url("/api/layout", omit) == (
                "/api/layout?" + urlencode(state.query_pairs(omit)))


def test_url_writer_leaves_defaults_out_but_writes_what_the_model_defaults_to() -> None:
    """A bare view: the version, the scenario, the fix set and the grain are written out
    (their declared writers give the model's defaults); every other field is at its
    default and is left out."""
    pairs = dict(ViewState().query_pairs())
    written = {name for name, p in VIEW_PARAMS.items() if p.write is not None}
    conditional = {"step_grain", "base"}  # written only beside step / compare
    assert set(pairs) == written - conditional


@pytest.mark.parametrize("route", VIEW_ROUTES)
def test_openapi_lists_the_declared_parameters(shared_client: Any, route: str) -> None:
    """Every route taking a view documents exactly ViewState's parameters (and its own)."""
    params = shared_client.get("/openapi.json").json()["paths"][route]["get"]["parameters"]
    names = [p["name"] for p in params]
    declared = declared_names()
    assert names[: len(declared)] == declared
    assert not set(names[len(declared):]) & set(declared)  # the route's own: h, start, count


class _Inputs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[tuple[str, str, str | None]] = []  # (tag, name, hidden value)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag in ("input", "select") and a.get("name"):
            hidden = a.get("value") if a.get("type") == "hidden" else None
            self.inputs.append((tag, str(a["name"]), hidden))


def form_inputs(state: ViewState) -> list[tuple[str, str, str | None]]:
    html = Renderer(TEMPLATES).env.get_template("_scenario-form.html.jinja").render(
        form=form_context(state))
    parser = _Inputs()
    parser.feed(html)
    return parser.inputs


def test_scenario_form_inputs_are_the_declared_parameters_it_keeps() -> None:
    """The form names every field not declared form="reset" (those a new run starts
    without: a position in the old run, or a trace's own), once each; the ones it keeps are
    hidden inputs holding the URL's text of the view's value."""
    state = every_field_set(without="trace")
    inputs = form_inputs(state)
    names = [name for _, name, _ in inputs]
    kept = [n for n in ViewState.model_fields if VIEW_PARAMS[n].form != "reset"]
    assert sorted(names) == sorted(declared_names(kept))
    assert len(names) == len(set(names))
    url = dict(state.query_pairs())
    hidden = {name: value for _, name, value in inputs if value is not None}
    assert set(hidden) == {n for n in kept if VIEW_PARAMS[n].form == "keep"}
    assert hidden == {n: url[n] for n in hidden}


def test_submitting_the_form_unchanged_keeps_the_view_but_what_a_new_run_resets() -> None:
    """The form's query (hidden inputs, the scenario select, every spec field as the form
    shows it) reads back as the same view with the reset fields at their defaults."""
    state = every_field_set(without="trace")
    html = Renderer(TEMPLATES).env.get_template("_scenario-form.html.jinja").render(
        form=form_context(state))
    query = [(n, v) for n, v in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"',
                                           html)]
    query.append(("scenario", re.search(r'<option value="([^"]+)" selected', html).group(1)))
    spec = form_context(state)["fields"]
    query += [(f["name"], str(f["value"])) for f in spec]
    got, _ = parse_query(query)
    reset = {n: ViewState.model_fields[n].default for n in ViewState.model_fields
             if VIEW_PARAMS[n].form == "reset"}
    assert got.with_(params=state.params) == state.with_(**reset)
    assert got.param_map["boots"] == "2"


@pytest.mark.parametrize("value", ["%C2%B2:1", "r1:%C2%B2", "%D9%A3:2", "1:6", "r:2", "1:"])
def test_open_with_anything_but_ascii_digits_is_a_4xx_naming_it(shared_client: Any,
                                                                value: str) -> None:
    """str.isdigit() takes '²' and Arabic-Indic digits, which int() refuses: open's items
    must be ASCII <boot>:<level> or r<range>:<level>, level 1..5, or a 422 naming open."""
    response = shared_client.get(f"/api/snapshot?v=1&scenario=teaching-small&open={value}")
    assert response.status_code == 422
    assert "open" in response.text
