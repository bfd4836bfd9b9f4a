// Undo/redo as pure functions over snapshots: every edit pushes the state it replaces.
import type { GraphState } from "./model";

export interface History {
  past: GraphState[];
  future: GraphState[];
}

export const HISTORY_LIMIT = 200;
export const EMPTY_HISTORY: History = { past: [], future: [] };

/** Only what an edit changes: selection, measurement and drag flags are not undone. */
export function snapshot(state: GraphState): GraphState {
  return {
    nodes: state.nodes.map(({ id, type, position, data }) => ({ id, type, position: { ...position }, data: structuredClone(data) })),
    edges: state.edges.map(({ id, source, sourceHandle, target, targetHandle, style }) => ({ id, source, sourceHandle, target, targetHandle, style })),
    groups: structuredClone(state.groups),
  };
}

/** The history after an edit of `before`; the redo list is dropped. */
export function record(history: History, before: GraphState): History {
  const past = [...history.past, snapshot(before)];
  return { past: past.slice(-HISTORY_LIMIT), future: [] };
}

/** The state to show after undo, and the new history; null when there is nothing to undo. */
export function undo(history: History, current: GraphState): [GraphState, History] | null {
  const previous = history.past.at(-1);
  if (!previous) return null;
  return [previous, { past: history.past.slice(0, -1), future: [snapshot(current), ...history.future] }];
}

/** The state to show after redo, and the new history; null when there is nothing to redo. */
export function redo(history: History, current: GraphState): [GraphState, History] | null {
  const next = history.future[0];
  if (!next) return null;
  return [next, { past: [...history.past, snapshot(current)], future: history.future.slice(1) }];
}
