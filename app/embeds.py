"""The "Copy embed code" snippet: an <iframe> of a view's embed URL (embed=1).

The embed page fits its frame (static/app.css: the tree takes the height the step controls
leave), so any frame from MIN_WIDTH x MIN_HEIGHT up shows the tree and the controls without
scrolling; the snippet asks for a little more room than that, for the tree.
"""

from __future__ import annotations

from markupsafe import escape

__all__ = ["EMBED_HEIGHT", "EMBED_WIDTH", "MIN_HEIGHT", "MIN_WIDTH", "embed_snippet"]

MIN_WIDTH, MIN_HEIGHT = 640, 400  # the smallest frame the embed layout is made for
EMBED_WIDTH, EMBED_HEIGHT = 800, 500


def embed_snippet(url: str, title: str) -> str:
    """The HTML a host page pastes to embed the view at `url` (an absolute embed URL)."""
    return (f'<iframe src="{escape(url)}" width="{EMBED_WIDTH}" height="{EMBED_HEIGHT}" '
            f'title="{escape(title)}" loading="lazy"></iframe>')
