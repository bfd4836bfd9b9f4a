// Groups (the graph file's editor layer) on the canvas: drawn as React Flow nodes of their own
// kind, so the library does the dragging and resizing; moving one carries the nodes inside it.
import type { Node, XYPosition } from "@xyflow/react";
import type { GraphNode, GraphState, Group } from "./model";

/** Sizes assumed for a node React Flow has not measured yet (as `addGroup` assumes). */
const NODE_WIDTH = 260;
const NODE_HEIGHT = 120;
const FLOW_PREFIX = "group:";
export const GROUP_MIN_SIZE = { width: 160, height: 80 };

export type GroupFlowNode = Node<{ group: Group }, "groupBox">;

/** The canvas node id of a group; graph node ids never contain `:`, so the two cannot clash. */
export function groupFlowId(id: string): string {
  return `${FLOW_PREFIX}${id}`;
}

/** The group id of a canvas node id, or null for a graph node. */
export function groupOfFlowId(flowId: string): string | null {
  return flowId.startsWith(FLOW_PREFIX) ? flowId.slice(FLOW_PREFIX.length) : null;
}

/** Groups as canvas nodes: drawn before (under) the graph's nodes but over the links, so that
 * their title bar and resize handles stay reachable; never selected, dragged by the title bar. */
export function groupFlowNodes(groups: Group[]): GroupFlowNode[] {
  return groups.map((group) => ({
    id: groupFlowId(group.id),
    type: "groupBox",
    position: { x: group.bounding[0], y: group.bounding[1] },
    width: group.bounding[2],
    height: group.bounding[3],
    // The resizer starts from the measured size; a group's size is always known, so say it.
    measured: { width: group.bounding[2], height: group.bounding[3] },
    data: { group },
    selectable: false,
    deletable: false,
    connectable: false,
    dragHandle: ".group-grip",
  }));
}

/** The nodes a group holds: those whose centre lies inside it (as ComfyUI decides). */
export function nodesInGroup(group: Group, nodes: GraphNode[]): string[] {
  const [x, y, w, h] = group.bounding;
  return nodes
    .filter((n) => {
      const cx = n.position.x + (n.measured?.width ?? NODE_WIDTH) / 2;
      const cy = n.position.y + (n.measured?.height ?? NODE_HEIGHT) / 2;
      return cx >= x && cx <= x + w && cy >= y && cy <= y + h;
    })
    .map((n) => n.id);
}

/** The state with group `id` moved to `to`, and its `members` moved by the same distance. */
export function moveGroup(state: GraphState, id: string, to: XYPosition, members: string[]): GraphState {
  const group = state.groups.find((g) => g.id === id);
  if (!group) return state;
  const dx = to.x - group.bounding[0];
  const dy = to.y - group.bounding[1];
  if (dx === 0 && dy === 0) return state;
  const inside = new Set(members);
  return {
    nodes: state.nodes.map((n) => (inside.has(n.id) ? { ...n, position: { x: n.position.x + dx, y: n.position.y + dy } } : n)),
    edges: state.edges,
    groups: state.groups.map((g) => (g.id === id ? { ...g, bounding: [to.x, to.y, g.bounding[2], g.bounding[3]] } : g)),
  };
}

/** The groups with group `id` given a new box, no smaller than GROUP_MIN_SIZE. */
export function resizeGroup(groups: Group[], id: string, box: { x: number; y: number; width: number; height: number }): Group[] {
  const width = Math.max(GROUP_MIN_SIZE.width, box.width);
  const height = Math.max(GROUP_MIN_SIZE.height, box.height);
  return groups.map((g) => (g.id === id ? { ...g, bounding: [box.x, box.y, width, height] } : g));
}
