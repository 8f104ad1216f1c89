"""A step's htmx fragment leaves out what does not change with the step.

When the browser has drawn the same view at another step (X-Mmu-Drawn), the scenario
picker, the scenario form and the trace form are what they were: the fragment sends an
empty placeholder with each one's id and hx-preserve, and htmx keeps the element it has.
Any other request (another view drawn, none, a full page, htmx's history restore) gets
them whole.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import HX, HX_RESTORE

VIEW = "/?v=1&scenario=teaching-small&skip=0"
KEPT = ("scenario-pick", "scenario-form", "trace-form")


def placeholder(panel: str) -> str:
    return f'<div id="{panel}" hx-preserve="true" data-kept="1"></div>'


def whole(text: str) -> bool:
    """The three panels with their controls: the picker's select, a spec field, the
    trace box."""
    return all(s in text for s in ('id="scenario"', 'id="spec-boots"', 'id="trace-text"'))


def drawn(client: Any, url: str) -> str:
    """The canonical URL of `url`'s view, as app.js sends it in X-Mmu-Drawn."""
    url_self: str = client.get(url).context["urls"]["self"]
    return url_self


def test_a_step_from_the_same_view_keeps_the_step_independent_panels(
        shared_client: Any) -> None:
    headers = HX | {"X-Mmu-Drawn": drawn(shared_client, f"{VIEW}&step=5")}
    response = shared_client.get(f"{VIEW}&step=6", headers=headers)
    assert response.status_code == 200
    assert response.context["kept"] is True
    for panel in KEPT:
        assert placeholder(panel) in response.text, panel
    assert not any(s in response.text for s in ('id="spec-boots"', 'id="trace-text"',
                                                 '<select id="scenario"'))
    # What changes with the step is all there.
    for panel in ("narration", "stats", "fixes", "timeline", "tree-delta"):
        assert f'id="{panel}"' in response.text, panel


@pytest.mark.parametrize("other", [
    "&step=5&fixes=none",  # another fix set: another run
    "&step=5&grain=op",    # another grain: other controls
    "&step=5&sp=3",        # another selection
])
def test_a_step_from_another_view_sends_the_panels_whole(shared_client: Any,
                                                         other: str) -> None:
    headers = HX | {"X-Mmu-Drawn": drawn(shared_client, VIEW + other)}
    response = shared_client.get(f"{VIEW}&step=6", headers=headers)
    assert response.context["kept"] is False
    assert whole(response.text)
    assert "data-kept" not in response.text


@pytest.mark.parametrize(("headers", "with_drawn"), [(HX, False), ({}, True), (HX_RESTORE, True)],
                         ids=["no-drawn", "page", "restore"])
def test_without_a_drawn_view_or_as_a_full_page_the_panels_are_whole(
        shared_client: Any, headers: dict[str, str], with_drawn: bool) -> None:
    """A full page (a first visit, a reload, htmx's history restore after Back) draws from
    nothing, so it ignores X-Mmu-Drawn; an htmx request without it has nothing to keep."""
    if with_drawn:
        headers = headers | {"X-Mmu-Drawn": drawn(shared_client, f"{VIEW}&step=5")}
    response = shared_client.get(f"{VIEW}&step=6", headers=headers)
    assert whole(response.text)
    assert "data-kept" not in response.text
