"""Lineage drawn server-side as SVG: bases in the left column, each adapter one
column right of what it builds on (its parent, else its base). Nodes link to pages.

A node with more children than the selector drew (registry.selectors.Lineage.hidden) gets one
collapsed node, "+9,980 more", linking to where those children are listed and expanded."""

from dataclasses import dataclass

from django.urls import reverse
from django.utils.html import escape

from registry.selectors import Lineage

COLUMN_WIDTH = 250
ROW_HEIGHT = 58
NODE_WIDTH = 220
NODE_HEIGHT = 40
MARGIN = 10


@dataclass
class _Node:
    id: str
    label: str
    status: str
    kind: str
    url: str
    column: int
    row: int = 0

    @property
    def x(self) -> int:
        return MARGIN + self.column * COLUMN_WIDTH

    @property
    def y(self) -> int:
        return MARGIN + self.row * ROW_HEIGHT


def _nodes(lineage: Lineage) -> dict[str, _Node]:
    nodes = {}
    for base in lineage.bases:
        url = reverse("ui:base-detail", args=[base.base_model.namespace, base.base_model.name, base.number])
        nodes[str(base.id)] = _Node(str(base.id), base.ref, base.status, "base", url, column=0)
    by_id = {str(a.id): a for a in lineage.adapters}

    def column_of(adapter) -> int:
        parent = by_id.get(str(adapter.parent_id)) if adapter.parent_id else None
        return column_of(parent) + 1 if parent is not None else 1

    for adapter in lineage.adapters:
        url = reverse("ui:adapter-detail", args=[adapter.adapter.namespace, adapter.adapter.name, adapter.number])
        nodes[str(adapter.id)] = _Node(
            str(adapter.id), adapter.ref, adapter.status, "adapter", url, column=column_of(adapter)
        )
    for parent_id, hidden in lineage.hidden.items():
        parent = nodes.get(parent_id)
        if parent is not None:
            nodes[f"more-{parent_id}"] = _Node(
                f"more-{parent_id}", f"+{hidden} more", "", "more", _more_url(parent), column=parent.column + 1
            )
    rows: dict[int, int] = {}
    for node in nodes.values():
        node.row = rows.get(node.column, 0)
        rows[node.column] = node.row + 1
    return nodes


def _more_url(parent: _Node) -> str:
    """Where the children a graph leaves out are listed: the adapter's children (paged, expandable
    in place) or the base page's "adapters built on it"."""
    if parent.kind == "base":
        return f"{parent.url}#built-on"
    return f"{parent.url}children/"


def _edge(child: _Node, target: _Node) -> str:
    x1, y1 = child.x, child.y + NODE_HEIGHT // 2
    x2, y2 = target.x + NODE_WIDTH, target.y + NODE_HEIGHT // 2
    middle = (x1 + x2) // 2
    return f'<path class="edge" d="M{x2},{y2} C{middle},{y2} {middle},{y1} {x1},{y1}" />'


def _collapsed(node: _Node) -> str:
    return (
        f'<a href="{escape(node.url)}" class="node more" data-more="{escape(node.label)}">'
        f"<title>{escape(node.label)} children: list them</title>"
        f'<rect x="{node.x}" y="{node.y}" width="{NODE_WIDTH}" height="{NODE_HEIGHT}" rx="6" />'
        f'<text x="{node.x + 10}" y="{node.y + 24}">{escape(node.label)}</text>'
        "</a>"
    )


def _node(node: _Node, current: bool) -> str:
    if node.kind == "more":
        return _collapsed(node)
    classes = f"node {node.kind} status-{escape(node.status)}" + (" current" if current else "")
    label = node.label if len(node.label) <= 30 else node.label[:29] + "…"
    return (
        f'<a href="{escape(node.url)}" class="{classes}" data-ref="{escape(node.label)}">'
        f"<title>{escape(node.label)} ({escape(node.status)})</title>"
        f'<rect x="{node.x}" y="{node.y}" width="{NODE_WIDTH}" height="{NODE_HEIGHT}" rx="6" />'
        f'<text x="{node.x + 10}" y="{node.y + 17}">{escape(label)}</text>'
        f'<text class="sub" x="{node.x + 10}" y="{node.y + 32}">{escape(node.kind)} · {escape(node.status)}</text>'
        "</a>"
    )


def lineage_svg(lineage: Lineage, current_id) -> str:
    """The SVG markup (every label escaped) for a lineage graph."""
    nodes = _nodes(lineage)
    links = [*lineage.edges, *({"from": f"more-{parent}", "to": parent} for parent in lineage.hidden)]
    edges = [_edge(nodes[e["from"]], nodes[e["to"]]) for e in links if e["from"] in nodes and e["to"] in nodes]
    width = MARGIN * 2 + (max(n.column for n in nodes.values()) + 1) * COLUMN_WIDTH
    height = MARGIN * 2 + (max(n.row for n in nodes.values()) + 1) * ROW_HEIGHT
    body = "".join(edges) + "".join(_node(n, n.id == str(current_id)) for n in nodes.values())
    return (
        f'<svg class="lineage" role="img" aria-label="Lineage graph" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">{body}</svg>'
    )
