"""The shadow-page DAG endpoints: analyses hold to their definitions, exports to the snapshot.

The definitions (app/graph_export.py) are checked against a brute-force reading of the
snapshot's parent_ptes, not against the networkx calls that compute them:
- a page is reachable iff it is a valid root (root_count > 0, not invalid) or one of its
  parents is reachable;
- a valid page no root reaches is stranded: every orphan and ex-root (no parent, not a
  root) is, and so is every page whose parents are all stranded;
- the blast radius of sp is the set of pages that no root reaches once sp is taken out.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import networkx as nx
import pytest

STEPS = "/api/snapshot?scenario=teaching-small"


def _reachable(pages: list[dict[str, Any]], without: int | None = None) -> set[int]:
    """Fixed point of "root, or child of a reachable page", optionally with a page removed."""
    reach = {p["id"] for p in pages
             if p["root_count"] and not p["invalid"] and p["id"] != without}
    changed = True
    while changed:
        changed = False
        for p in pages:
            if p["id"] not in reach and p["id"] != without and any(
                    parent in reach for parent, _ in p["parents"]):
                reach.add(p["id"])
                changed = True
    return reach


@pytest.fixture(scope="module")
def last_step(shared_client: Any) -> int:
    return int(shared_client.get(STEPS).json()["last_step"])


@pytest.mark.parametrize("step", [0, 7, 20, 47])
def test_reachable_and_stranded_follow_the_parent_ptes(shared_client: Any, step: int,
                                                       last_step: int) -> None:
    step = min(step, last_step)
    snap = shared_client.get(f"{STEPS}&step={step}").json()
    graph = shared_client.get(f"/api/graph?scenario=teaching-small&step={step}").json()
    pages = snap["pages"]
    reach = _reachable(pages)
    assert graph["pages"] == len(pages)
    assert graph["links"] == sum(len(p["parents"]) for p in pages)
    assert graph["reachable"] == len(reach)
    assert graph["stranded"] == sorted(p["id"] for p in pages
                                       if p["id"] not in reach and not p["invalid"])
    assert set(graph["orphans"]) <= set(graph["stranded"])
    # the model counts the same pages, walking its own kvm_mmu_page links
    assert len(graph["stranded"]) == snap["orphans"]["unreachable"]


def test_step_7_strands_the_first_orphan(shared_client: Any) -> None:
    """README: teaching-small's first orphan appears at step 7; no root reaches it."""
    graph = shared_client.get("/api/graph?scenario=teaching-small&step=7").json()
    assert len(graph["orphans"]) == 1
    assert graph["orphans"][0] in graph["stranded"]


@pytest.mark.parametrize("step", [7, None])  # None: the last step
def test_blast_radius_is_what_no_root_reaches_without_the_page(shared_client: Any,
                                                               step: int | None,
                                                               last_step: int) -> None:
    """For every page of the step: subtree = sp and all below; blast radius by removal.

    At teaching-small's last step L2 has shut down and its trees are torn down: whatever
    is left hangs under no root, so each page's blast radius is itself.
    """
    step = last_step if step is None else step
    snap = shared_client.get(f"{STEPS}&step={step}").json()
    pages = snap["pages"]
    before = _reachable(pages)
    children: dict[int, set[int]] = {p["id"]: set() for p in pages}
    for p in pages:
        for parent, _ in p["parents"]:
            children[parent].add(p["id"])
    for sp in (p["id"] for p in pages):
        got = shared_client.get(
            f"/api/graph?scenario=teaching-small&step={step}&sp={sp}").json()
        below, todo = {sp}, [sp]
        while todo:
            for child in children[todo.pop()] - below:
                below.add(child)
                todo.append(child)
        assert set(got["subtree"]) == below
        lost = before - _reachable(pages, without=sp) if sp in before else {sp}
        assert set(got["blast_radius"]) == lost | {sp}


def test_graphml_and_dot_carry_every_page_and_spte(shared_client: Any) -> None:
    """Both exports: one node per page of the snapshot, one edge per parent_ptes entry."""
    pages = shared_client.get(f"{STEPS}&step=7").json()["pages"]
    links = sum(len(p["parents"]) for p in pages)
    graphml = shared_client.get("/api/graph.graphml?scenario=teaching-small&step=7")
    assert graphml.status_code == 200
    assert graphml.headers["content-type"].startswith("application/graphml+xml")
    assert "step7.graphml" in graphml.headers["content-disposition"]
    parsed = nx.parse_graphml(graphml.text, node_type=int)
    assert sorted(parsed.nodes) == sorted(p["id"] for p in pages)
    assert parsed.number_of_edges() == links
    ET.fromstring(graphml.text)  # well-formed XML
    dot = shared_client.get("/api/graph.dot?scenario=teaching-small&step=7")
    assert dot.headers["content-type"].startswith("text/vnd.graphviz")
    lines = dot.text.splitlines()
    assert lines[0] == "digraph shadow_mmu_step_7 {"
    assert sum(" -> " in line for line in lines) == links
    assert sum("[label=" in line and " -> " not in line for line in lines) == len(pages)


@pytest.mark.parametrize("path", ["/api/graph", "/api/graph.graphml", "/api/graph.dot"])
def test_bad_view_is_a_422_naming_the_field(shared_client: Any, path: str) -> None:
    response = shared_client.get(f"{path}?step=abc")
    assert response.status_code == 422
    assert response.json()["field"] == "step"
