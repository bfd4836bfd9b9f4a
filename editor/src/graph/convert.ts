// Pure conversions between graph documents (the file format) and the editor's state.
import type { EditorGroup, EditorNode, GraphDoc, NodeCatalog, NodeEntry } from "../api/types";
import { autoLayout } from "./layout";
import { edgeId, type GraphEdge, type GraphNode, type GraphState, type Group } from "./model";

/** Literal inputs of a node type with their defaults, as a new node starts with them. */
export function defaultValues(catalog: NodeCatalog, type: string): Record<string, unknown> {
  const values: Record<string, unknown> = {};
  for (const input of catalog.nodes[type]?.inputs ?? []) {
    if (input.link_only) continue;
    if (input.default !== null && input.default !== undefined) values[input.name] = input.default;
    else if (input.choices?.length) values[input.name] = input.choices[0];
  }
  return values;
}

/** The editor state for a document; nodes without a position are laid out automatically. */
export function docToState(doc: GraphDoc, catalog: NodeCatalog): GraphState {
  const layer = doc.editor ?? {};
  const placed = layer.nodes ?? {};
  const nodes: GraphNode[] = [];
  const edges: GraphEdge[] = [];
  for (const [id, entry] of Object.entries(doc.nodes)) {
    const spec = catalog.nodes[entry.type];
    const links = entry.links ?? {};
    const literal = new Set(spec?.inputs.filter((i) => !i.link_only).map((i) => i.name) ?? []);
    const editor: EditorNode = placed[id] ?? {};
    const position = editor.position ?? null;
    nodes.push({
      id,
      type: "graph",
      position: position ? { x: position[0], y: position[1] } : { x: NaN, y: NaN },
      data: {
        type: entry.type,
        values: { ...defaultValues(catalog, entry.type), ...(entry.inputs ?? {}) },
        sockets: Object.keys(links).filter((name) => literal.has(name)),
        ...(editor.title ? { title: editor.title } : {}),
        ...(Array.isArray(editor.randomize) ? { randomize: editor.randomize as string[] } : {}),
      },
    });
    for (const [input, ref] of Object.entries(links)) {
      const dot = ref.lastIndexOf(".");
      edges.push(makeEdge(ref.slice(0, dot), ref.slice(dot + 1), id, input, catalog, entry.type));
    }
  }
  const groups: Group[] = (layer.groups ?? []).map((g: EditorGroup, index: number) => ({
    id: `group-${index + 1}`,
    title: g.title,
    bounding: [...g.bounding] as Group["bounding"],
  }));
  const missing = nodes.some((n) => Number.isNaN(n.position.x));
  return { nodes: missing ? autoLayout(nodes, edges) : nodes, edges, groups };
}

/** An edge from `source.output` to `target.input`, coloured by the input's port type. */
export function makeEdge(
  source: string,
  output: string,
  target: string,
  input: string,
  catalog: NodeCatalog,
  targetType: string,
): GraphEdge {
  const type = catalog.nodes[targetType]?.inputs.find((i) => i.name === input)?.type;
  const color = (type && catalog.types[type]?.color) || "#888";
  return {
    id: edgeId(target, input),
    source,
    sourceHandle: output,
    target,
    targetHandle: input,
    style: { stroke: color, strokeWidth: 2 },
  };
}

/** The graph document for the editor state, with positions, titles and groups in `editor`. */
export function stateToDoc(state: GraphState, catalog: NodeCatalog): GraphDoc {
  const nodes: Record<string, NodeEntry> = {};
  const layer: Record<string, EditorNode> = {};
  for (const node of state.nodes) {
    const { type, values, sockets } = node.data;
    const spec = catalog.nodes[type];
    const linked = new Set(state.edges.filter((e) => e.target === node.id).map((e) => e.targetHandle));
    const inputs: Record<string, unknown> = {};
    for (const [name, value] of Object.entries(values)) {
      const input = spec?.inputs.find((i) => i.name === name);
      if (spec && (!input || input.link_only)) continue; // stale values of a changed node type
      if (sockets.includes(name) || linked.has(name) || value === undefined) continue;
      inputs[name] = value;
    }
    const links: Record<string, string> = {};
    for (const e of state.edges.filter((e) => e.target === node.id)) {
      links[e.targetHandle!] = `${e.source}.${e.sourceHandle}`;
    }
    const entry: NodeEntry = { type };
    if (Object.keys(inputs).length) entry.inputs = inputs;
    if (Object.keys(links).length) entry.links = links;
    nodes[node.id] = entry;
    const editor: EditorNode = { position: [round(node.position.x), round(node.position.y)] };
    if (node.data.title) editor.title = node.data.title;
    if (node.data.randomize?.length) (editor as Record<string, unknown>).randomize = node.data.randomize;
    layer[node.id] = editor;
  }
  const doc: GraphDoc = { version: 1, nodes, editor: { nodes: layer } };
  if (state.groups.length) {
    doc.editor!.groups = state.groups.map((g) => ({ title: g.title, bounding: g.bounding.map(round) as Group["bounding"] }));
  }
  return doc;
}

function round(value: number): number {
  return Math.round(value * 10) / 10;
}

/** A node id for a new node of `type`: its name in snake case, numbered past ids in use. */
export function freshId(type: string, taken: Iterable<string>): string {
  const used = new Set(taken);
  const base = type.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toLowerCase().replace(/[^a-z0-9_]/g, "_") || "node";
  const stem = /^[a-z_]/.test(base) ? base : `n_${base}`;
  if (!used.has(stem)) return stem;
  for (let i = 2; ; i++) if (!used.has(`${stem}_${i}`)) return `${stem}_${i}`;
}

/** Paste: the document's nodes under fresh ids, shifted by `offset`, with links between them kept. */
export function pasteState(doc: GraphDoc, catalog: NodeCatalog, taken: Iterable<string>, offset: { x: number; y: number }): GraphState {
  const used = new Set(taken);
  const rename = new Map<string, string>();
  for (const [id, entry] of Object.entries(doc.nodes)) {
    const fresh = used.has(id) ? freshId(entry.type, used) : id;
    used.add(fresh);
    rename.set(id, fresh);
  }
  const renamed: GraphDoc = { version: 1, nodes: {}, editor: { nodes: {} } };
  for (const [id, entry] of Object.entries(doc.nodes)) {
    const links: Record<string, string> = {};
    for (const [input, ref] of Object.entries(entry.links ?? {})) {
      const dot = ref.lastIndexOf(".");
      const source = rename.get(ref.slice(0, dot));
      if (source) links[input] = `${source}.${ref.slice(dot + 1)}`; // links leaving the selection drop
    }
    renamed.nodes[rename.get(id)!] = { ...entry, links };
    const pos = doc.editor?.nodes?.[id]?.position;
    renamed.editor!.nodes![rename.get(id)!] = { ...doc.editor?.nodes?.[id], position: pos ? [pos[0] + offset.x, pos[1] + offset.y] : null };
  }
  const state = docToState(renamed, catalog);
  return { ...state, nodes: state.nodes.map((n) => ({ ...n, selected: true })) };
}
