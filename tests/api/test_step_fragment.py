"""A step's htmx answer holds only what changes with the step.

When the browser has drawn the same view at another step (X-Mmu-Drawn), the scenario
picker, the scenario form, the trace form and the marker strip are what they were. Outside
compare mode the answer swaps nothing itself: each panel that changes comes out of band
(hx-swap-oob) to the element of the same id, and the rest is left out. In compare mode the
view is swapped whole, with an empty hx-preserve placeholder for each unchanged panel.
Any other request (another view drawn, none, a full page, htmx's history restore) gets
every panel whole.
"""

from __future__ import annotations

import re
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


# What changes with the step, each with its own id, sent out of band on a step.
STEP_PANELS = ("share-row", "tree-panel", "step-buttons", "slider-row", "jumps", "tour",
               "narration", "stats", "fixes", "boots-ref", "exports")


def test_a_step_from_the_same_view_sends_only_what_changes_out_of_band(
        shared_client: Any) -> None:
    """Outside compare mode the answer swaps nothing itself (HX-Reswap: none): each panel
    that changes with the step carries hx-swap-oob, and what does not (the three panels,
    the marker strip, the description) is not in it at all."""
    headers = HX | {"X-Mmu-Drawn": drawn(shared_client, f"{VIEW}&step=5")}
    response = shared_client.get(f"{VIEW}&step=6", headers=headers)
    assert response.status_code == 200
    assert response.headers["HX-Reswap"] == "none"
    assert response.context["kept"] is True
    assert response.context["step_update"] is True
    for panel in STEP_PANELS:
        assert re.search(rf'id="{panel}"[^>]*hx-swap-oob="true"', response.text), panel
    for panel in KEPT:
        assert f'id="{panel}"' not in response.text, panel
    assert 'class="markers"' not in response.text
    assert "data-kept" not in response.text
    # The tree's delta is from step 5, the step drawn.
    assert response.context["tree"]["base"] is not None


def test_a_step_in_compare_mode_keeps_the_panels_by_placeholder(shared_client: Any) -> None:
    """Compare mode swaps the view whole (its two trees), with an hx-preserve placeholder
    for each step-independent panel."""
    compare = f"{VIEW}&compare=1"
    headers = HX | {"X-Mmu-Drawn": drawn(shared_client, f"{compare}&step=5")}
    response = shared_client.get(f"{compare}&step=6", headers=headers)
    assert response.status_code == 200
    assert "HX-Reswap" not in response.headers
    assert response.context["kept"] is True
    assert response.context["step_update"] is False
    for panel in KEPT:
        assert placeholder(panel) in response.text, panel
    assert not any(s in response.text for s in ('id="spec-boots"', 'id="trace-text"',
                                                 '<select id="scenario"'))
    assert "hx-swap-oob" not in response.text


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
    assert "hx-swap-oob" not in response.text


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
    assert "hx-swap-oob" not in response.text
