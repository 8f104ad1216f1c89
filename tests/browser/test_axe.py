"""axe-core (the npm dev dependency, pinned in package.json) finds no serious or critical
accessibility violation on the main page, an embed and compare mode.

axe is injected into the page, which the page's CSP (script-src 'self') would refuse: the
context bypasses the CSP for that (bypass_csp=True), nothing else changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.test_screenshots import COMPARE_URL
from tests.browser.test_visualizer import wait_tree

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = ("serious", "critical")

VIEWS = {
    "main": ("/?v=1&scenario=teaching-small&step=7", ["tree"]),
    "embed": ("/?v=1&scenario=teaching-small&step=7&embed=1", ["tree"]),
    "compare": (COMPARE_URL, ["tree", "tree-base"]),
}


@pytest.fixture
def axe_page(browser: Any, server_url: str) -> Iterator[Any]:
    if not AXE.is_file():
        pytest.fail(f"{AXE} is missing: run `make install` (npm ci installs axe-core)")
    context = browser.new_context(viewport={"width": 1400, "height": 900},
                                  base_url=server_url, bypass_csp=True)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.mark.parametrize("name", list(VIEWS))
def test_axe_finds_no_serious_or_critical_violation(axe_page: Any, name: str) -> None:
    url, trees = VIEWS[name]
    axe_page.goto(url)
    for tree_id in trees:
        wait_tree(axe_page, tree_id=tree_id)
    axe_page.add_script_tag(path=str(AXE))
    result = axe_page.evaluate(
        """async () => {
          const r = await axe.run(document, {resultTypes: ["violations"]});
          return r.violations.map((v) => ({id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" "))}));
        }""")
    blocking = [v for v in result if v["impact"] in BLOCKING]
    assert blocking == [], "\n".join(
        f"{v['id']} ({v['impact']}): {v['help']} at {v['nodes']}" for v in blocking)
