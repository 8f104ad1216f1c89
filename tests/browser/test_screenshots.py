"""Screenshots of the landing view, compare mode and an embed at a projector's 1024x768 and
a wide 1920x1080, saved as test artefacts in artifacts/screenshots/ (gitignored):
screen-<view>-<width>x<height>.png. Set UPDATE_DOCS_SCREENSHOT=1 to also refresh
README's docs/screenshot.png from the 1920x1080 compare view.
"""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path
from typing import Any

import pytest

from tests.browser.test_visualizer import DOCS_SCREENSHOT, PNG_MAGIC, named_run, wait_tree

SIZES = [(1024, 768), (1920, 1080)]
# The landing view is the bare "/" (teaching-small at its default step). Compare mode: the
# mainline fix set (the baseline, app.viewstate's default base) against it plus
# track-write-zap, at step 7, where mainline orphans its first unsync page and the patched
# run does not (the first difference of the two runs: see test_compare_mode_... in
# test_visualizer.py).
COMPARE_URL = ("/?v=1&scenario=teaching-small&fixes=unlink-children-zap,flood-detection,"
               "track-write-zap&compare=1&step=7")
VIEWS = {
    "landing": ("/", ["tree"]),
    "compare": (COMPARE_URL, ["tree", "tree-base"]),
    "embed": ("/?v=1&scenario=teaching-small&step=7&embed=1", ["tree"]),
}


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
@pytest.mark.parametrize("name", list(VIEWS))
def test_screenshot(page: Any, artifacts_dir: Path, name: str, size: tuple[int, int]) -> None:
    width, height = size
    url, trees = VIEWS[name]
    page.set_viewport_size({"width": width, "height": height})
    page.goto(url)
    for tree_id in trees:
        wait_tree(page, tree_id=tree_id)
    if name == "landing":
        assert wait_tree(page)["step"] == str(named_run("teaching-small").default_step)
    path = artifacts_dir / f"screen-{name}-{width}x{height}.png"
    page.screenshot(path=str(path))
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC), data[:16]
    assert data[12:16] == b"IHDR", data[:16]
    assert struct.unpack(">II", data[16:24]) == (width, height)
    if name == "compare" and size == (1920, 1080) and (
            os.environ.get("UPDATE_DOCS_SCREENSHOT") == "1"):
        shutil.copyfile(path, DOCS_SCREENSHOT)
