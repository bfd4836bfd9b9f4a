// The editor's graph state: what React Flow draws, plus what each node holds for the graph file.
import type { Edge, Node } from "@xyflow/react";

export interface NodeData extends Record<string, unknown> {
  /** The node type, a key of the catalog. */
  type: string;
  /** Literal input values, by input name. */
  values: Record<string, unknown>;
  /** Literal inputs turned into sockets, so that a link can drive them. */
  sockets: string[];
  /** A title shown instead of the type's display name. */
  title?: string;
  /** Seed inputs set to change after each run. */
  randomize?: string[];
}

export type GraphNode = Node<NodeData, "graph">;
export type GraphEdge = Edge;

export interface Group {
  id: string;
  title: string;
  /** x, y, width, height, as in the graph file's editor layer. */
  bounding: [number, number, number, number];
}

/** The editable part of the editor's state: one undo step restores exactly this. */
export interface GraphState {
  nodes: GraphNode[];
  edges: GraphEdge[];
  groups: Group[];
}

export const EMPTY_STATE: GraphState = { nodes: [], edges: [], groups: [] };

/** The id of the edge feeding `target`'s input `input`; one link per input, so it is unique. */
export function edgeId(target: string, input: string): string {
  return `${target}:${input}`;
}
