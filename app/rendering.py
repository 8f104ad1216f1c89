"""One template per page; a full page or one named block, chosen from the htmx headers.

- A normal GET, or an htmx history-restore request (HX-History-Restore-Request, which also
  carries HX-Request since htmx 2), gets the full page.
- Any other request with HX-Request: true gets only the block (default "view").
- Every response says `Vary: HX-Request`, since one URL serves both shapes.

Responses keep `.template`, `.block` and `.context` and, like Starlette's template responses,
hand them to TestClient through the http.response.debug extension.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.types import Receive, Scope, Send

__all__ = ["Renderer", "TemplateResponse", "is_fragment_request", "json_for_script",
           "kept_include"]


def is_fragment_request(request: Request) -> bool:
    headers = request.headers
    return headers.get("hx-request") == "true" and (
        headers.get("hx-history-restore-request") != "true"
    )


def json_for_script(value: Any) -> Markup:
    """JSON safe inside <script type="application/json">: no <, >, & or ' left to break out."""
    text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    # str.replace runs in C; a translate table is ten times slower on megabytes of JSON.
    text = (text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("'", "\\u0027"))
    return Markup(text)  # every HTML-significant character is escaped above


@jinja2.pass_context
def kept_include(context: jinja2.runtime.Context, keep: Callable[[Callable[[], str]], str],
                 name: str) -> Markup:
    """Template `name` rendered with this context, through `keep` (which renders it once
    and returns the kept HTML after: RunEntry.kept_html for one view of a run)."""
    def render() -> str:
        return context.environment.get_template(name).render(context.get_all())
    return Markup(keep(render))  # the template's own output, escaped by it


class TemplateResponse(HTMLResponse):
    def __init__(
        self,
        template: jinja2.Template,
        context: dict[str, Any],
        *,
        block: str | None = None,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.template = template
        self.block = block
        self.context = context
        if block is None:
            content = template.render(context)
        else:
            render_block = template.blocks[block]
            content = "".join(render_block(template.new_context(context)))
        super().__init__(content, status_code=status_code, headers=headers)
        self.headers["Vary"] = "HX-Request"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = self.context.get("request")
        extensions = request.scope.get("extensions", {}) if request is not None else {}
        if "http.response.debug" in extensions:
            await send(
                {
                    "type": "http.response.debug",
                    "info": {"template": self.template, "context": self.context},
                }
            )
        await super().__call__(scope, receive, send)


class Renderer:
    def __init__(self, directory: Path) -> None:
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(directory)),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["json_script"] = json_for_script
        self.env.filters["thousands"] = lambda n: f"{n:,}"
        self.env.filters["signed"] = lambda n: f"{n:+,}" if n else ""
        self.env.filters["hex"] = lambda n: f"{n:#x}"
        self.env.globals["kept_include"] = kept_include

    def compile_all(self) -> list[str]:
        """Compile every template now, at start-up: not on the first request that renders
        it (a tenth of a second or two), and a template that does not compile stops the
        start. Returns their names."""
        names = self.env.list_templates(extensions=["jinja"])
        for name in names:
            self.env.get_template(name)
        return names

    def render(
        self,
        request: Request,
        name: str,
        context: Mapping[str, Any],
        *,
        block: str = "view",
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> TemplateResponse:
        """The full page, or `block` alone for an htmx (non-history-restore) request."""
        template = self.env.get_template(name)
        ctx = {"request": request, "fragment": is_fragment_request(request), **context}
        return TemplateResponse(
            template,
            ctx,
            block=block if ctx["fragment"] else None,
            status_code=status_code,
            headers=headers,
        )
