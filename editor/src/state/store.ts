// The one store: the graph being edited, its undo history, the catalog, and the runs.
import { applyEdgeChanges, applyNodeChanges, type EdgeChange, type NodeChange, type XYPosition } from "@xyflow/react";
import { create } from "zustand";
import type { GraphDoc, GraphError, JobMessage, NodeCatalog } from "../api/types";
import { defaultValues, docToState, freshId, makeEdge, pasteState, stateToDoc } from "../graph/convert";
import { groupOfFlowId, moveGroup, nodesInGroup, resizeGroup } from "../graph/groups";
import { EMPTY_HISTORY, record, redo, undo, type History } from "../graph/history";
import { autoLayout } from "../graph/layout";
import { EMPTY_STATE, type GraphEdge, type GraphNode, type GraphState, type Group, type NodeData } from "../graph/model";
import { connectionProblem, type Connection } from "../graph/rules";
import { applyJobMessage, newJobRun, type JobRun } from "./run";

export interface Editor extends GraphState {
  catalog: NodeCatalog | null;
  history: History;
  /** The current document's name (a file name or an example's name). */
  name: string;
  /** A short message for the person: why a link was refused, what was loaded. */
  notice: string | null;
  /** Lines under the notice: each error of a file that could not be opened, say. */
  noticeDetails: string[];
  /** The 400's validation errors of the last submission. */
  validation: GraphError[];
  /** Runs by job id, and the one drawn on the canvas. */
  runs: Record<string, JobRun>;
  shownJob: string | null;
  previews: Record<string, string>;
  connected: boolean;
  queueCounts: { pending: number; running: number };

  setCatalog(catalog: NodeCatalog): void;
  onNodesChange(changes: NodeChange<GraphNode>[]): void;
  onEdgesChange(changes: EdgeChange<GraphEdge>[]): void;
  /** Push the current state on the undo stack (before a drag, say). */
  checkpoint(): void;
  connect(c: Connection): boolean;
  addNode(type: string, position: XYPosition): string;
  setValue(node: string, input: string, value: unknown): void;
  updateData(node: string, patch: Partial<NodeData>): void;
  toggleSocket(node: string, input: string): void;
  loadDoc(doc: GraphDoc, name: string): void;
  paste(doc: GraphDoc, offset: XYPosition): void;
  layout(): void;
  addGroup(title: string): void;
  updateGroup(id: string, patch: Partial<Group>): void;
  removeGroup(id: string): void;
  /** A group's drag begins: one undo step, and the nodes inside it at this moment move with it. */
  startGroupDrag(id: string): void;
  /** The dragged group's new top-left corner (its nodes follow). */
  dragGroup(id: string, to: XYPosition): void;
  endGroupDrag(): void;
  /** A group's new box while it is resized (the resize's start is one undo step: `checkpoint`). */
  resizeGroupTo(id: string, box: { x: number; y: number; width: number; height: number }): void;
  undo(): void;
  redo(): void;
  doc(): GraphDoc;
  selectedDoc(): GraphDoc | null;
  setNotice(notice: string | null, details?: string[]): void;
  setValidation(errors: GraphError[]): void;
  startJob(jobId: string): void;
  applyJob(message: JobMessage): void;
  setPreview(node: string, url: string): void;
}

const COALESCE_MS = 1000;
let lastEdit = { key: "", at: 0 };

function graphOf(s: GraphState): GraphState {
  return { nodes: s.nodes, edges: s.edges, groups: s.groups };
}

export const useEditor = create<Editor>()((set, get) => {
  // Edits within one task (a Delete removes nodes and then their edges) are one undo step.
  let batching = false;
  // The group being dragged and the nodes it carries (fixed when the drag starts).
  let groupDrag: { id: string; members: string[] } | null = null;
  /** Apply an edit, recording the state before it for undo. */
  const edit = (change: (s: Editor) => Partial<Editor>) => {
    const first = !batching;
    if (first) {
      batching = true;
      setTimeout(() => (batching = false), 0);
    }
    set((s) => ({ ...change(s), ...(first ? { history: record(s.history, graphOf(s)) } : {}), validation: [] }));
  };

  return {
    ...EMPTY_STATE,
    catalog: null,
    history: EMPTY_HISTORY,
    name: "untitled",
    notice: null,
    noticeDetails: [],
    validation: [],
    runs: {},
    shownJob: null,
    previews: {},
    connected: false,
    queueCounts: { pending: 0, running: 0 },

    setCatalog: (catalog) => set({ catalog }),

    onNodesChange: (all) => {
      // Groups are canvas nodes too (graph/groups.ts): their moves arrive through onNodeDrag and
      // their sizes through the resizer, so their changes are not applied here.
      const changes = all.filter((c) => !("id" in c) || groupOfFlowId(c.id) === null);
      if (!changes.length) return;
      const structural = changes.some((c) => c.type === "remove" || c.type === "add");
      if (structural) {
        const removed = new Set(changes.flatMap((c) => (c.type === "remove" ? [c.id] : [])));
        edit((s) => ({
          nodes: applyNodeChanges(changes, s.nodes),
          edges: s.edges.filter((e) => !removed.has(e.source) && !removed.has(e.target)),
        }));
      } else set((s) => ({ nodes: applyNodeChanges(changes, s.nodes) }));
    },

    onEdgesChange: (changes) => {
      if (changes.some((c) => c.type === "remove")) edit((s) => ({ edges: applyEdgeChanges(changes, s.edges) }));
      else set((s) => ({ edges: applyEdgeChanges(changes, s.edges) }));
    },

    checkpoint: () => set((s) => ({ history: record(s.history, graphOf(s)) })),

    connect: (c) => {
      const { catalog, nodes, edges } = get();
      if (!catalog) return false;
      const problem = connectionProblem(catalog, nodes, edges, c);
      if (problem) {
        set({ notice: `Link refused: ${problem}` });
        return false;
      }
      const target = nodes.find((n) => n.id === c.target)!;
      const input = catalog.nodes[target.data.type]?.inputs.find((i) => i.name === c.targetHandle);
      edit((s) => ({
        notice: null,
        // A literal input that gets a link becomes a socket.
        nodes:
          input && !input.link_only && !target.data.sockets.includes(input.name)
            ? s.nodes.map((n) => (n.id === c.target ? { ...n, data: { ...n.data, sockets: [...n.data.sockets, input.name] } } : n))
            : s.nodes,
        edges: [
          ...s.edges.filter((e) => !(e.target === c.target && e.targetHandle === c.targetHandle)),
          makeEdge(c.source, c.sourceHandle!, c.target, c.targetHandle!, catalog, target.data.type),
        ],
      }));
      return true;
    },

    addNode: (type, position) => {
      const { catalog, nodes } = get();
      const id = freshId(type, nodes.map((n) => n.id));
      const node: GraphNode = {
        id,
        type: "graph",
        position,
        data: { type, values: catalog ? defaultValues(catalog, type) : {}, sockets: [] },
      };
      edit((s) => ({ nodes: [...s.nodes.map((n) => ({ ...n, selected: false })), { ...node, selected: true }] }));
      return id;
    },

    setValue: (node, input, value) => {
      const key = `${node}:${input}`;
      const now = Date.now();
      const apply = (s: Editor) => ({
        nodes: s.nodes.map((n) => (n.id === node ? { ...n, data: { ...n.data, values: { ...n.data.values, [input]: value } } } : n)),
      });
      // Typing into one field is one undo step, not one per keystroke.
      if (lastEdit.key === key && now - lastEdit.at < COALESCE_MS) set((s) => ({ ...apply(s), validation: [] }));
      else edit(apply);
      lastEdit = { key, at: now };
    },

    updateData: (node, patch) =>
      edit((s) => ({ nodes: s.nodes.map((n) => (n.id === node ? { ...n, data: { ...n.data, ...patch } } : n)) })),

    toggleSocket: (node, input) =>
      edit((s) => {
        const target = s.nodes.find((n) => n.id === node)!;
        const on = target.data.sockets.includes(input);
        return {
          nodes: s.nodes.map((n) =>
            n.id === node ? { ...n, data: { ...n.data, sockets: on ? n.data.sockets.filter((x) => x !== input) : [...n.data.sockets, input] } } : n,
          ),
          edges: on ? s.edges.filter((e) => !(e.target === node && e.targetHandle === input)) : s.edges,
        };
      }),

    loadDoc: (doc, name) => {
      const { catalog } = get();
      if (!catalog) return;
      const state = docToState(doc, catalog);
      edit(() => ({ ...state, name, shownJob: null, previews: {}, notice: null, noticeDetails: [] }));
    },

    paste: (doc, offset) => {
      const { catalog, nodes } = get();
      if (!catalog) return;
      const pasted = pasteState(doc, catalog, nodes.map((n) => n.id), offset);
      edit((s) => ({
        nodes: [...s.nodes.map((n) => ({ ...n, selected: false })), ...pasted.nodes],
        edges: [...s.edges, ...pasted.edges],
      }));
    },

    layout: () => edit((s) => ({ nodes: autoLayout(s.nodes, s.edges) })),

    addGroup: (title) => {
      const chosen = get().nodes.filter((n) => n.selected);
      const boxes = (chosen.length ? chosen : get().nodes).map((n) => ({
        x: n.position.x,
        y: n.position.y,
        w: n.measured?.width ?? 260,
        h: n.measured?.height ?? 120,
      }));
      if (!boxes.length) return;
      const x = Math.min(...boxes.map((b) => b.x)) - 20;
      const y = Math.min(...boxes.map((b) => b.y)) - 50;
      const w = Math.max(...boxes.map((b) => b.x + b.w)) + 20 - x;
      const h = Math.max(...boxes.map((b) => b.y + b.h)) + 20 - y;
      edit((s) => ({ groups: [...s.groups, { id: `group-${Date.now()}`, title, bounding: [x, y, w, h] }] }));
    },

    updateGroup: (id, patch) => edit((s) => ({ groups: s.groups.map((g) => (g.id === id ? { ...g, ...patch } : g)) })),
    removeGroup: (id) => edit((s) => ({ groups: s.groups.filter((g) => g.id !== id) })),

    startGroupDrag: (id) => {
      const s = get();
      const group = s.groups.find((g) => g.id === id);
      if (!group) return;
      groupDrag = { id, members: nodesInGroup(group, s.nodes) };
      s.checkpoint();
    },

    dragGroup: (id, to) => {
      if (groupDrag?.id !== id) return;
      const members = groupDrag.members;
      set((s) => moveGroup(graphOf(s), id, to, members));
    },

    endGroupDrag: () => {
      groupDrag = null;
    },

    resizeGroupTo: (id, box) => set((s) => ({ groups: resizeGroup(s.groups, id, box) })),

    undo: () => {
      const s = get();
      const result = undo(s.history, graphOf(s));
      if (result) set({ ...result[0], history: result[1], validation: [] });
    },

    redo: () => {
      const s = get();
      const result = redo(s.history, graphOf(s));
      if (result) set({ ...result[0], history: result[1], validation: [] });
    },

    doc: () => stateToDoc(graphOf(get()), get().catalog!),

    selectedDoc: () => {
      const s = get();
      const chosen = new Set(s.nodes.filter((n) => n.selected).map((n) => n.id));
      if (!chosen.size) return null;
      return stateToDoc(
        { nodes: s.nodes.filter((n) => chosen.has(n.id)), edges: s.edges.filter((e) => chosen.has(e.source) && chosen.has(e.target)), groups: [] },
        s.catalog!,
      );
    },

    setNotice: (notice, details = []) => set({ notice, noticeDetails: details }),
    setValidation: (validation) => set({ validation }),

    startJob: (jobId) =>
      set((s) => ({ runs: { ...s.runs, [jobId]: s.runs[jobId] ?? newJobRun(jobId) }, shownJob: jobId, previews: {}, validation: [] })),

    applyJob: (message) =>
      set((s) => {
        const id = message.data.job_id;
        const run = applyJobMessage(s.runs[id] ?? newJobRun(id), message);
        return { runs: { ...s.runs, [id]: run } };
      }),

    setPreview: (node, url) =>
      set((s) => {
        const old = s.previews[node];
        if (old) URL.revokeObjectURL(old);
        return { previews: { ...s.previews, [node]: url } };
      }),
  };
});
