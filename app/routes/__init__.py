"""HTTP routes: pages.py (HTML, htmx fragments) and api.py (JSON under /api)."""
