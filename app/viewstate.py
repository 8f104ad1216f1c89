"""The whole view in the URL: parse a query string into a ViewState and rebuild it.

Query parameters (version 1): the fields of ViewState, each declared once there with its
description, its query-string schema, how it is read and written and what the scenario
form does with it (a ViewParam). From those declarations alone, view_parameters() makes the
OpenAPI parameters of every route that takes a view, parse_query() reads exactly those,
query_pairs() writes the canonical URL and form_inputs() the scenario form's hidden inputs.
Spec fields (any ScenarioSpec field, overriding the scenario's value) come in `params`. In
the canonical URL, `step_grain` is converted away and the model's defaults are written out.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote_plus

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.errors import ViewError
from mmu_model import DEFAULT_FIXES, FIXES, ScenarioSpec

__all__ = [
    "DEFAULT_SCENARIO",
    "SPEC_FIELDS",
    "VIEW_PARAMS",
    "VIEW_VERSION",
    "ViewParam",
    "ViewState",
    "fixes_param",
    "open_param",
    "parse_fixes",
    "parse_open",
    "parse_query",
    "view_parameters",
]

VIEW_VERSION = 1
DEFAULT_SCENARIO = "teaching-small"
SPEC_FIELDS: tuple[str, ...] = tuple(info.name for info in ScenarioSpec.FIELDS)
_MAX_PARAM_CHARS = 200
MAX_OPEN_GROUPS = 16

Grain = Literal["action", "op"]
FIND_PATTERN = r"^(#[0-9]{1,9}|(0[xX])?[0-9a-fA-F]{1,13})$"


def parse_fixes(raw: str, field: str = "fixes") -> frozenset[str]:
    """'a,b' -> {a, b}; 'none' or '' -> {}; unknown names -> ViewError naming `field`."""
    names = [n.strip() for n in raw.split(",") if n.strip()]
    if names == ["none"]:
        return frozenset()
    unknown = [n for n in names if n not in FIXES]
    if unknown:
        raise ViewError(
            field, f"unknown fix {unknown[0]!r}; known: {', '.join(FIXES)} (or 'none')"
        )
    return frozenset(names)


# ASCII digits only: str.isdigit() also takes '²', which int() refuses.
_OPEN_ITEM = re.compile(r"(r?)([0-9]{1,9}):([1-5])")


def parse_open(raw: str) -> tuple[tuple[int, int], ...]:
    """'3:4,5:1,r7:2' -> ((-8, 2), (3, 4), (5, 1)), sorted and without repeats; ViewError
    naming `open`. A leak group is (boot, level); a folded range "r<range>:<level>" is
    (-1 - range, level), so the two never meet."""
    groups: set[tuple[int, int]] = set()
    for item in (i.strip() for i in raw.split(",")):
        if not item:
            continue
        match = _OPEN_ITEM.fullmatch(item)
        if match is None:
            raise ViewError("open", f"open must list <boot>:<level> or r<range>:<level> "
                            f"pairs (level 1..5), got {item[:40]!r}")
        fold, number, level = match.groups()
        groups.add((-1 - int(number) if fold else int(number), int(level)))
    if len(groups) > MAX_OPEN_GROUPS:
        raise ViewError("open", f"open lists {len(groups)} groups; at most {MAX_OPEN_GROUPS} "
                        "can be open at once")
    return tuple(sorted(groups))


def open_param(groups: Iterable[tuple[int, int]]) -> str:
    # Leak groups by boot, then folded ranges by range.
    return ",".join(f"r{-1 - boot}:{level}" if boot < 0 else f"{boot}:{level}"
                    for boot, level in sorted(groups, key=lambda g: (g[0] < 0, abs(g[0]), g)))


def fixes_param(fixes: Iterable[str]) -> str:
    """Canonical text of a fix set: names in FIXES order, comma-separated; 'none' if empty."""
    active = set(fixes)
    return ",".join(name for name in FIXES if name in active) or "none"


Parse = Literal["simple", "fixes", "open", "spec"]
FormUse = Literal["keep", "own", "reset"]
# How a parameter's value is written into a view URL: the text, or None to leave it out.
# Given the state and the names the URL omits (a control that supplies one of them).
Writer = Callable[["ViewState", frozenset[str]], "str | None"]


@dataclass(frozen=True)
class ViewParam:
    """How one ViewState field lives in the query string, declared with the field.

    parse: how parse_query() reads it ("simple": the text as is; "fixes": a fix set;
      "open": leak groups; "spec": not a parameter of its own, its names are the
      ScenarioSpec fields).
    write: the text query_pairs() writes (None: left out); default: the value in the form
      parse reads it, left out while it equals the field's default.
    form: what the scenario form does with it: "keep" (a hidden input carries the view's
      value), "own" (the form has its own control), "reset" (a new run starts without it).

    It is the field's json_schema_extra, a callable that adds nothing to the model's JSON
    schema: the query-string schema goes to the OpenAPI (view_parameters()).
    """

    query_schema: dict[str, Any]
    parse: Parse
    write: Writer | None
    form: FormUse

    def __call__(self, schema: dict[str, Any]) -> None:
        return None


def _param(default: Any, description: str, schema: dict[str, Any] | None = None, *,
           parse: Parse = "simple", write: Writer | None = None, form: FormUse = "keep",
           **checks: Any) -> Any:
    """A view parameter: its default, description, query-string schema, how it is read and
    written and what the scenario form does with it (ViewParam)."""
    extra = ViewParam(schema or {"type": "string"}, parse, write, form)
    return Field(default=default, description=description, json_schema_extra=extra, **checks)


def whole_number_schema(minimum: int, maximum: int | None = None) -> dict[str, Any]:
    """A whole-number parameter's schema; empty means absent, as the page's forms send it."""
    bounds: dict[str, Any] = {"type": "integer", "minimum": minimum}
    if maximum is not None:
        bounds["maximum"] = maximum
    return {"anyOf": [bounds, {"type": "string", "maxLength": 0}]}


def _write_scenario(state: ViewState, omit: frozenset[str]) -> str | None:
    return None if state.trace is not None else state.scenario_name


def _write_step_grain(state: ViewState, omit: frozenset[str]) -> str | None:
    """Only beside a step, and only when it says something: another grain than `grain`, or
    `grain` is left out (the grain select supplies it)."""
    if state.step is None or state.step_grain is None:
        return None
    return state.step_grain if state.step_grain != state.grain or "grain" in omit else None


def _write_base(state: ViewState, omit: frozenset[str]) -> str | None:
    return fixes_param(state.base) if state.compare and state.base is not None else None


class ViewState(BaseModel):
    """Everything a view URL holds; frozen, so it can key caches.

    The fields' order is the canonical URL's order.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Literal[1] = _param(1, "View-state version (1; another value is refused).",
                           {"type": "integer", "enum": [1]},
                           write=lambda s, omit: str(VIEW_VERSION))
    trace: str | None = _param(None, "Id of a stored trace (64 hex digits), instead of "
                               "scenario.", pattern=r"^[0-9a-f]{64}$", form="reset")
    scenario: str | None = _param(None, "Built-in scenario name (default teaching-small).",
                                  max_length=100, write=_write_scenario, form="own")
    # ScenarioSpec overrides, each under its field's own name (written in the spec's order).
    params: tuple[tuple[str, str], ...] = _param(
        (), "Scenario spec fields, overriding the scenario's values.", parse="spec",
        form="own")
    fixes: frozenset[str] | None = _param(
        None, "Comma-separated fix names, or 'none'; absent: the model's defaults.",
        parse="fixes", write=lambda s, omit: fixes_param(s.fix_set))
    grain: Grain = _param("action", "Timeline grain: guest action or kernel operation.",
                          {"type": "string", "enum": ["action", "op"]},
                          write=lambda s, omit: s.grain)
    step: int | None = _param(None, "Step in `grain` (default: the run's opening step).",
                              whole_number_schema(0), ge=0, form="reset")
    step_grain: Grain | None = _param(
        None, "The grain `step` is counted in, when not `grain` (converted, then dropped).",
        {"type": "string", "enum": ["action", "op"]}, write=_write_step_grain, form="reset")
    compare: bool = _param(False, "1: side by side with the `base` fix set.",
                           {"type": "boolean"})
    base: frozenset[str] | None = _param(
        None, "Fix set of the compare baseline (default: the model's defaults).",
        parse="fixes", write=_write_base)
    sp: int | None = _param(None, "Selected shadow page id.", whole_number_schema(0), ge=0,
                            form="reset")
    open: tuple[tuple[int, int], ...] = _param(
        (), "Folded nodes drawn page by page, comma-separated: leak groups as <boot>:<level>, "
        "folded ranges of healthy pages as r<range>:<level>.",
        parse="open", form="reset")
    embed: bool = _param(False, "1: the tree and the step controls only.", {"type": "boolean"})
    lenient: bool = _param(False, "1: skip malformed trace lines instead of refusing the "
                           "trace.", {"type": "boolean"}, form="reset")
    skip: bool = _param(True, "Action grain: next / previous skip the steps that change "
                        "nothing (0: step through every one).", {"type": "boolean"})
    find: str | None = _param(None, "A gfn in hex (0x1a2b) or a shadow page id (#12): "
                              "select its page and list the steps that touched it.",
                              {"anyOf": [{"type": "string", "maxLength": 40,
                                          "pattern": FIND_PATTERN},
                                         {"type": "string", "maxLength": 0}]},
                              max_length=40, pattern=FIND_PATTERN, form="reset")
    stop: int | None = _param(None, "Stop of the source's walkthrough (1 = the first).",
                              whole_number_schema(1), ge=1, form="reset")

    @property
    def scenario_name(self) -> str:
        return self.scenario or DEFAULT_SCENARIO

    @property
    def fix_set(self) -> frozenset[str]:
        return DEFAULT_FIXES if self.fixes is None else self.fixes

    @property
    def base_set(self) -> frozenset[str]:
        return DEFAULT_FIXES if self.base is None else self.base

    @property
    def param_map(self) -> dict[str, str]:
        return dict(self.params)

    def with_(self, **changes: Any) -> ViewState:
        return self.model_copy(update=changes)

    def run_state(self) -> ViewState:
        """Only what picks the run (source, spec overrides, fixes, lenient): keys per-run URLs."""
        return ViewState(scenario=self.scenario, trace=self.trace, params=self.params,
                         fixes=self.fixes, lenient=self.lenient)

    def query_pairs(self, omit: Iterable[str] = ()) -> list[tuple[str, str]]:
        """Canonical query parameters, in the fields' order, without the names in `omit`.

        Each field's ViewParam writes it (see there). A control that supplies a parameter
        itself (the slider's step, the grain select) gets a URL without it, since a
        repeated parameter is refused.
        """
        skip = frozenset(omit)
        pairs: list[tuple[str, str]] = []
        for name, param in VIEW_PARAMS.items():
            if param.parse == "spec":
                pairs.extend(sorted(self.params, key=lambda kv: SPEC_FIELDS.index(kv[0])))
                continue
            text = _WRITERS[name](self, skip)
            if text is not None:
                pairs.append((name, text))
        return [(k, v) for k, v in pairs if k not in skip]

    def to_query(self, omit: Iterable[str] = ()) -> str:
        # urlencode()'s output, quoting each name and value once per process: a page holds
        # a hundred or more view URLs that differ in a step or two, and quoting was 85% of
        # building each.
        return "&".join(f"{_quoted(k)}={_quoted(v)}" for k, v in self.query_pairs(omit))

    def url(self, path: str = "/", omit: Iterable[str] = ()) -> str:
        return f"{path}?{self.to_query(omit)}"

    def form_inputs(self) -> list[tuple[str, str]]:
        """The scenario form's hidden inputs: the parameters it keeps ("keep"), as the URL
        writes them."""
        return [(name, value) for name, value in self.query_pairs()
                if name in VIEW_PARAMS and VIEW_PARAMS[name].form == "keep"]


@functools.lru_cache(maxsize=4096)
def _quoted(text: str) -> str:
    return quote_plus(text)


def _writer(name: str, param: ViewParam) -> Writer:
    """The default writer: the value as `parse` reads it, left out at the field's default."""
    default = ViewState.model_fields[name].default

    def write(state: ViewState, omit: frozenset[str]) -> str | None:
        value = getattr(state, name)
        if value == default:
            return None
        if param.parse == "fixes":
            return fixes_param(value)
        if param.parse == "open":
            return open_param(value)
        if isinstance(value, bool):
            return "1" if value else "0"
        return str(value)

    return write


def _view_params() -> dict[str, ViewParam]:
    """name -> ViewParam of every ViewState field, in declaration order."""
    out = {}
    for name, info in ViewState.model_fields.items():
        extra = info.json_schema_extra
        if not isinstance(extra, ViewParam):
            raise TypeError(f"ViewState.{name} is not declared with _param()")
        out[name] = extra
    return out


VIEW_PARAMS = _view_params()
_WRITERS: dict[str, Writer] = {name: p.write or _writer(name, p) for name, p in VIEW_PARAMS.items()}


def view_parameters() -> list[dict[str, Any]]:
    """The OpenAPI parameters of a view, in ViewState's order (the spec overrides' field:
    every ScenarioSpec field)."""
    out: list[dict[str, Any]] = []
    for name, param in VIEW_PARAMS.items():
        if param.parse == "spec":
            out.extend({"name": f.name, "in": "query", "required": False,
                        "description": f"Scenario spec field: {f.label} ({f.help})",
                        "schema": {"type": "string"}} for f in ScenarioSpec.FIELDS)
        else:
            out.append({"name": name, "in": "query", "required": False,
                        "description": ViewState.model_fields[name].description or "",
                        "schema": dict(param.query_schema)})
    return out


def parse_query(
    items: Iterable[tuple[str, str]], *, extra: Iterable[str] = ()
) -> tuple[ViewState, dict[str, str]]:
    """Parse query items into a ViewState; names in `extra` are returned separately.

    Raises ViewError naming the first bad parameter: unknown, repeated, or invalid.
    """
    extra_names = set(extra)
    seen: dict[str, str] = {}
    for key, value in items:
        if key in seen:
            raise ViewError(key, f"{key} is given more than once")
        if len(value) > _MAX_PARAM_CHARS:
            raise ViewError(key, f"{key} is longer than {_MAX_PARAM_CHARS} characters")
        seen[key] = value
    out_extra = {k: seen.pop(k) for k in list(seen) if k in extra_names}

    data: dict[str, Any] = {}
    params: list[tuple[str, str]] = []
    for key, value in seen.items():
        param = VIEW_PARAMS.get(key)
        how = None if param is None else param.parse
        if how == "simple":
            data[key] = value.strip()
        elif how == "fixes":
            data[key] = parse_fixes(value, key)
        elif how == "open":
            data[key] = parse_open(value)
        elif key in SPEC_FIELDS:
            params.append((key, value.strip()))
        else:
            own = [n for n, p in VIEW_PARAMS.items() if p.parse != "spec"]
            known = ", ".join([*own, *SPEC_FIELDS, *sorted(extra_names)])
            raise ViewError(key, f"unknown parameter {key!r}; known: {known}")
    version = data.pop("v", str(VIEW_VERSION))
    if version != str(VIEW_VERSION):
        raise ViewError("v", f"unsupported view version {version[:20]!r}; this server "
                        f"understands v={VIEW_VERSION}")
    for key in ("step", "sp", "find", "stop"):
        if data.get(key) == "":
            del data[key]
    if data.get("scenario") == "":
        del data["scenario"]
    data["params"] = tuple(params)
    try:
        state = ViewState.model_validate(data)
    except ValidationError as exc:
        raise _view_error(exc) from None
    if state.trace is not None and (state.scenario is not None or state.params):
        field = "scenario" if state.scenario is not None else state.params[0][0]
        raise ViewError(field, f"{field} cannot be combined with trace: a trace is replayed as is")
    return state, out_extra


_MESSAGES: Mapping[str, str] = {
    "trace": "trace must be the 64-hex-digit id of a stored trace",
    "grain": "grain must be 'action' or 'op'",
    "step_grain": "step_grain must be 'action' or 'op'",
    "step": "step must be a whole number >= 0",
    "sp": "sp must be a shadow page id (a whole number >= 0)",
    "find": "find must be a gfn in hex (like 0x1a2b) or a shadow page id (like #12)",
    "stop": "stop must be a walkthrough stop number (a whole number >= 1)",
}


def _view_error(exc: ValidationError) -> ViewError:
    first = exc.errors()[0]
    loc = first.get("loc") or ("request",)
    field = str(loc[0])
    message = _MESSAGES.get(field) or f"{field}: {first.get('msg', 'invalid value')}"
    value = first.get("input")
    if isinstance(value, str | int):
        message = f"{message} (got {str(value)[:40]!r})"
    return ViewError(field, message)
