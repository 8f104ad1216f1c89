"""A snapshot's shadow-page DAG as a networkx graph: analyses, and GraphML / DOT exports.

Nodes are the live shadow pages (struct kvm_mmu_page) of the step; an edge parent -> child
is one entry of the child's parent_ptes (the SPTE at `index` of the parent that points at
it).  A child may hang under several parents, and under one parent at several entries, so
the graph is a MultiDiGraph.  Roots are the valid pages with root_count > 0 (a vCPU's current
root, mmu->root, or a cached one in mmu->prev_roots: where a walk of L0's shadow tables
starts).

- reachable: the pages a walk from some root can reach through present SPTEs;
- stranded: the valid pages no root reaches: the model's orphans, ex-roots (top-level
  pages no vCPU holds any more), and every page that hangs only below those; the ids of
  the pages the model counts as OrphanSummary.unreachable;
- subtree(sp): sp and everything below it;
- blast_radius(sp): the pages a root reaches only through sp (sp's dominator subtree,
  from a virtual node above all roots): what no vCPU walk could find once sp is zapped.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import networkx as nx

from mmu_model import Snapshot

__all__ = ["analyses", "blast_radius", "dot_lines", "graphml_lines", "shadow_dag", "subtree"]

_TOP = -1  # the virtual node above every root, for the dominator computation


def shadow_dag(snap: Snapshot) -> nx.MultiDiGraph:
    graph = nx.MultiDiGraph()
    for sp in snap.pages:
        graph.add_node(sp.id, gfn=f"{sp.gfn:#x}", level=sp.level, role=sp.role,
                       status=sp.status, unsync=sp.unsync, root_count=sp.root_count,
                       write_flooding_count=sp.write_flooding_count,
                       leaf_sptes=sp.leaf_sptes, invalid=sp.invalid)
    for sp in snap.pages:
        for parent, index in sp.parents:
            if parent in graph:
                graph.add_edge(parent, sp.id, index=index)
    return graph


def _roots(graph: nx.MultiDiGraph) -> list[int]:
    """As OrphanSummary.with_reachability() takes them: an invalid root leads nowhere."""
    return [n for n, data in graph.nodes(data=True) if data["root_count"] and not data["invalid"]]


def subtree(graph: nx.MultiDiGraph, sp: int) -> set[int]:
    return {sp} | nx.descendants(graph, sp)


def blast_radius(graph: nx.MultiDiGraph, sp: int) -> set[int]:
    """The pages every root-to-page path of which passes through `sp` (sp included)."""
    rooted = nx.DiGraph(graph)  # dominators need no parallel edges
    rooted.add_node(_TOP)  # also when no root is left (every tree torn down)
    rooted.add_edges_from((_TOP, root) for root in _roots(graph))
    if sp not in rooted or not nx.has_path(rooted, _TOP, sp):
        return {sp} if sp in graph else set()
    dominator = nx.immediate_dominators(rooted, _TOP)
    tree = nx.DiGraph((d, n) for n, d in dominator.items() if n != d)
    return {sp} | nx.descendants(tree, sp)


def analyses(snap: Snapshot, sp: int | None) -> dict[str, Any]:
    graph = shadow_dag(snap)
    roots = _roots(graph)
    reachable = set(roots).union(*(nx.descendants(graph, r) for r in roots))
    stranded = sorted(n for n, invalid in graph.nodes(data="invalid")
                      if n not in reachable and not invalid)
    out: dict[str, Any] = {
        "step": snap.step, "pages": graph.number_of_nodes(), "links": graph.number_of_edges(),
        "roots": sorted(roots), "reachable": len(reachable), "stranded": stranded,
        "orphans": sorted(p.id for p in snap.pages if p.orphan),
    }
    if sp is not None and sp in graph:
        out["sp"] = sp
        out["subtree"] = sorted(subtree(graph, sp))
        out["blast_radius"] = sorted(blast_radius(graph, sp))
    return out


def graphml_lines(snap: Snapshot) -> Iterator[str]:
    yield from nx.generate_graphml(shadow_dag(snap))


def _dot_id(value: object) -> str:
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def dot_lines(snap: Snapshot) -> Iterator[str]:
    """Graphviz DOT: one node per page labelled like the page's tree, one edge per SPTE."""
    graph = shadow_dag(snap)
    yield f"digraph shadow_mmu_step_{snap.step} {{"
    yield "  node [shape=box, fontname=monospace];"
    for node, data in graph.nodes(data=True):
        label = _dot_id(f"sp {node} L{data['level']} gfn {data['gfn']}")[:-1] + (
            "\\n" + _dot_id(data["status"])[1:])  # two lines: id and level, status
        attrs = ", ".join(f"{k}={_dot_id(v)}" for k, v in data.items())
        yield f"  {node} [label={label}, {attrs}];"
    for parent, child, index in graph.edges(data="index"):
        yield f"  {parent} -> {child} [label={_dot_id(index)}];"
    yield "}"
