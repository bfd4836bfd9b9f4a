// Auto-layout for graphs that carry no positions: dagre ranks nodes left to right along their links.
import dagre from "@dagrejs/dagre";
import type { GraphEdge, GraphNode } from "./model";

export const NODE_WIDTH = 260;

/** The nodes with positions from a left-to-right layered layout (sizes estimated from rows). */
export function autoLayout(nodes: GraphNode[], edges: GraphEdge[]): GraphNode[] {
  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: "LR", nodesep: 40, ranksep: 80 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const n of nodes) {
    const rows = Object.keys(n.data.values).length + 3;
    g.setNode(n.id, { width: n.measured?.width ?? NODE_WIDTH, height: n.measured?.height ?? rows * 30 + 40 });
  }
  for (const e of edges) if (g.hasNode(e.source) && g.hasNode(e.target)) g.setEdge(e.source, e.target);
  dagre.layout(g);
  return nodes.map((n) => {
    const p = g.node(n.id);
    return { ...n, position: { x: Math.round(p.x - p.width / 2), y: Math.round(p.y - p.height / 2) } };
  });
}
