"""The whole view in the URL: parse a query string into a ViewState and rebuild it.

Query parameters (version 1): the fields of ViewState, each declared once there with its
description and its query-string schema; view_parameters() turns them into the OpenAPI
parameters of every route that takes a view, and parse_query() reads exactly those. Spec
fields (any ScenarioSpec field, overriding the scenario's value) come in `params`. In the
canonical URL, `step_grain` is converted away and the model's defaults are written out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal
from urllib.parse import urlencode

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.errors import ViewError
from mmu_model import DEFAULT_FIXES, FIXES, ScenarioSpec

__all__ = [
    "DEFAULT_SCENARIO",
    "SPEC_FIELDS",
    "VIEW_VERSION",
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


def parse_open(raw: str) -> tuple[tuple[int, int], ...]:
    """'3:4,5:1' -> ((3, 4), (5, 1)), sorted and without repeats; ViewError naming `open`."""
    groups: set[tuple[int, int]] = set()
    for item in (i.strip() for i in raw.split(",")):
        if not item:
            continue
        boot, sep, level = item.partition(":")
        if not (sep and boot.isdigit() and level.isdigit() and 1 <= int(level) <= 5):
            raise ViewError("open", f"open must list <boot>:<level> pairs (level 1..5), "
                            f"got {item[:40]!r}")
        groups.add((int(boot), int(level)))
    if len(groups) > MAX_OPEN_GROUPS:
        raise ViewError("open", f"open lists {len(groups)} groups; at most {MAX_OPEN_GROUPS} "
                        "can be open at once")
    return tuple(sorted(groups))


def open_param(groups: Iterable[tuple[int, int]]) -> str:
    return ",".join(f"{boot}:{level}" for boot, level in sorted(groups))


def fixes_param(fixes: Iterable[str]) -> str:
    """Canonical text of a fix set: names in FIXES order, comma-separated; 'none' if empty."""
    active = set(fixes)
    return ",".join(name for name in FIXES if name in active) or "none"


def _param(default: Any, description: str, schema: dict[str, Any] | None = None, *,
           parse: str = "simple", **checks: Any) -> Any:
    """A view parameter: its default, description, query-string schema and how it is read."""
    extra: Any = {"query_schema": schema or {"type": "string"}, "parse": parse}
    return Field(default=default, description=description, json_schema_extra=extra, **checks)


def whole_number_schema(minimum: int, maximum: int | None = None) -> dict[str, Any]:
    """A whole-number parameter's schema; empty means absent, as the page's forms send it."""
    bounds: dict[str, Any] = {"type": "integer", "minimum": minimum}
    if maximum is not None:
        bounds["maximum"] = maximum
    return {"anyOf": [bounds, {"type": "string", "maxLength": 0}]}


class ViewState(BaseModel):
    """Everything a view URL holds; frozen, so it can key caches."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Literal[1] = _param(1, "View-state version (1; another value is refused).",
                           {"type": "integer", "enum": [1]})
    scenario: str | None = _param(None, "Built-in scenario name (default teaching-small).",
                                  max_length=100)
    trace: str | None = _param(None, "Id of a stored trace (64 hex digits), instead of "
                               "scenario.", pattern=r"^[0-9a-f]{64}$")
    params: tuple[tuple[str, str], ...] = ()  # ScenarioSpec overrides: their own parameters
    fixes: frozenset[str] | None = _param(
        None, "Comma-separated fix names, or 'none'; absent: the model's defaults.",
        parse="fixes")
    base: frozenset[str] | None = _param(
        None, "Fix set of the compare baseline (default: the model's defaults).",
        parse="fixes")
    grain: Grain = _param("action", "Timeline grain: guest action or kernel operation.",
                          {"type": "string", "enum": ["action", "op"]})
    step: int | None = _param(None, "Step in `grain` (default: the run's opening step).",
                              whole_number_schema(0), ge=0)
    step_grain: Grain | None = _param(
        None, "The grain `step` is counted in, when not `grain` (converted, then dropped).",
        {"type": "string", "enum": ["action", "op"]})
    compare: bool = _param(False, "1: side by side with the `base` fix set.",
                           {"type": "boolean"})
    sp: int | None = _param(None, "Selected shadow page id.", whole_number_schema(0), ge=0)
    open: tuple[tuple[int, int], ...] = _param(
        (), "Folded leak groups drawn page by page: comma-separated <boot>:<level> pairs.",
        parse="open")
    embed: bool = _param(False, "1: the tree and the step controls only.", {"type": "boolean"})
    lenient: bool = _param(False, "1: skip malformed trace lines instead of refusing the "
                           "trace.", {"type": "boolean"})
    skip: bool = _param(True, "Action grain: next / previous skip the steps that change "
                        "nothing (0: step through every one).", {"type": "boolean"})
    find: str | None = _param(None, "A gfn in hex (0x1a2b) or a shadow page id (#12): "
                              "select its page and list the steps that touched it.",
                              {"anyOf": [{"type": "string", "maxLength": 40,
                                          "pattern": FIND_PATTERN},
                                         {"type": "string", "maxLength": 0}]},
                              max_length=40, pattern=FIND_PATTERN)
    stop: int | None = _param(None, "Stop of the source's walkthrough (1 = the first).",
                              whole_number_schema(1), ge=1)

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
        """Canonical query parameters, in a fixed order, without the names in `omit`.

        A control that supplies a parameter itself (the slider's step, the grain select)
        gets a URL without it, since a repeated parameter is refused.
        """
        skip = set(omit)
        pairs: list[tuple[str, str]] = [("v", str(VIEW_VERSION))]
        if self.trace is not None:
            pairs.append(("trace", self.trace))
        else:
            pairs.append(("scenario", self.scenario_name))
            pairs.extend(sorted(self.params, key=lambda kv: SPEC_FIELDS.index(kv[0])))
        pairs.append(("fixes", fixes_param(self.fix_set)))
        pairs.append(("grain", self.grain))
        if self.step is not None:
            pairs.append(("step", str(self.step)))
            if self.step_grain is not None and (
                self.step_grain != self.grain or "grain" in skip
            ):
                pairs.append(("step_grain", self.step_grain))
        if self.compare:
            pairs.append(("compare", "1"))
            if self.base is not None:
                pairs.append(("base", fixes_param(self.base)))
        if self.sp is not None:
            pairs.append(("sp", str(self.sp)))
        if self.open:
            pairs.append(("open", open_param(self.open)))
        if self.embed:
            pairs.append(("embed", "1"))
        if self.lenient:
            pairs.append(("lenient", "1"))
        if not self.skip:
            pairs.append(("skip", "0"))
        if self.find is not None:
            pairs.append(("find", self.find))
        if self.stop is not None:
            pairs.append(("stop", str(self.stop)))
        return [(k, v) for k, v in pairs if k not in skip]

    def to_query(self, omit: Iterable[str] = ()) -> str:
        return urlencode(self.query_pairs(omit))

    def url(self, path: str = "/", omit: Iterable[str] = ()) -> str:
        return f"{path}?{self.to_query(omit)}"


def _parameters() -> dict[str, tuple[str, str, dict[str, Any]]]:
    """name -> (how it is read, description, query schema), from ViewState's fields."""
    out = {}
    for name, info in ViewState.model_fields.items():
        extra = info.json_schema_extra
        if isinstance(extra, dict):
            out[name] = (str(extra["parse"]), info.description or "",
                         dict(extra["query_schema"]))  # type: ignore[arg-type]
    return out


VIEW_PARAMETERS = _parameters()


def view_parameters() -> list[dict[str, Any]]:
    """The OpenAPI parameters of a view: ViewState's own, then every ScenarioSpec field."""
    own = [{"name": name, "in": "query", "required": False, "description": description,
            "schema": schema} for name, (_, description, schema) in VIEW_PARAMETERS.items()]
    spec = [{"name": f.name, "in": "query", "required": False,
             "description": f"Scenario spec field: {f.label} ({f.help})",
             "schema": {"type": "string"}} for f in ScenarioSpec.FIELDS]
    return own + spec


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
        how = VIEW_PARAMETERS[key][0] if key in VIEW_PARAMETERS else None
        if how == "simple":
            data[key] = value.strip()
        elif how == "fixes":
            data[key] = parse_fixes(value, key)
        elif how == "open":
            data[key] = parse_open(value)
        elif key in SPEC_FIELDS:
            params.append((key, value.strip()))
        else:
            known = ", ".join([*VIEW_PARAMETERS, *SPEC_FIELDS, *sorted(extra_names)])
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
