// Connection rules: the one place that decides whether a link is allowed, fed by the catalog's port types.
import type { NodeCatalog } from "../api/types";
import type { GraphEdge, GraphNode } from "./model";

export interface Connection {
  source: string;
  sourceHandle: string | null;
  target: string;
  targetHandle: string | null;
}

/** Whether an output of type `source` may feed an input of type `target` (as the server decides). */
export function accepts(catalog: NodeCatalog, target: string, source: string): boolean {
  if (source === target || target === "ANY") return true;
  return (catalog.types[source]?.widens_to ?? []).includes(target);
}

/** The output's and input's port types for a connection, when both exist. */
export function connectionTypes(
  catalog: NodeCatalog,
  nodes: GraphNode[],
  c: Connection,
): { source: string; target: string } | null {
  const from = nodes.find((n) => n.id === c.source);
  const to = nodes.find((n) => n.id === c.target);
  const out = from && catalog.nodes[from.data.type]?.outputs.find((o) => o.name === c.sourceHandle);
  const inp = to && catalog.nodes[to.data.type]?.inputs.find((i) => i.name === c.targetHandle);
  return out && inp ? { source: out.type, target: inp.type } : null;
}

/** Why a link may not be made, or null when it may. */
export function connectionProblem(
  catalog: NodeCatalog,
  nodes: GraphNode[],
  edges: GraphEdge[],
  c: Connection,
): string | null {
  if (c.source === c.target) return "a node cannot feed itself";
  const types = connectionTypes(catalog, nodes, c);
  if (!types) return "unknown socket";
  if (!accepts(catalog, types.target, types.source)) {
    return `${types.source} cannot feed ${c.targetHandle} (${types.target})`;
  }
  // Replacing the link already on this input is allowed, so leave it out of the cycle check.
  const kept = edges.filter((e) => !(e.target === c.target && e.targetHandle === c.targetHandle));
  if (reaches(kept, c.target, c.source)) return "that link would make a cycle";
  return null;
}

function reaches(edges: GraphEdge[], from: string, to: string): boolean {
  const seen = new Set<string>();
  const stack = [from];
  while (stack.length) {
    const id = stack.pop()!;
    if (id === to) return true;
    if (seen.has(id)) continue;
    seen.add(id);
    for (const e of edges) if (e.source === id) stack.push(e.target);
  }
  return false;
}

/** Node types with an input that accepts `type` (outputs: with an output of it), for link drops. */
export function typesAccepting(catalog: NodeCatalog, type: string, fromOutput: boolean): string[] {
  return Object.values(catalog.nodes)
    .filter((spec) =>
      fromOutput
        ? spec.inputs.some((i) => accepts(catalog, i.type, type))
        : spec.outputs.some((o) => accepts(catalog, type, o.type)),
    )
    .map((spec) => spec.type);
}
