// The page: toolbar, palette, canvas and side panel, plus keyboard, clipboard and file drops.
import {
  Background,
  Controls,
  MiniMap,
  ReactFlow,
  ReactFlowProvider,
  useReactFlow,
  type FinalConnectionState,
  type IsValidConnection,
  type Node,
  type NodeChange,
  type XYPosition,
} from "@xyflow/react";
import { useCallback, useEffect, useMemo, useRef, useState, type DragEvent } from "react";
import type { GraphDoc } from "./api/types";
import { GraphNode } from "./components/GraphNode";
import { GroupBox } from "./components/GroupBox";
import { DRAG_TYPE, Palette } from "./components/Palette";
import { SearchPopup, type SearchRequest } from "./components/SearchPopup";
import { SidePanel } from "./components/SidePanel";
import { Toolbar } from "./components/Toolbar";
import { groupFlowNodes, groupOfFlowId } from "./graph/groups";
import type { GraphNode as GraphNodeModel } from "./graph/model";
import { accepts, connectionProblem, typesAccepting } from "./graph/rules";
import { downloadDoc, interruptShown, openFile, runGraph } from "./state/controller";
import { useEditor } from "./state/store";

const nodeTypes = { graph: GraphNode, groupBox: GroupBox };

function editable(target: EventTarget | null): boolean {
  const el = target as HTMLElement | null;
  return !!el && (el.tagName === "INPUT" || el.tagName === "TEXTAREA" || el.tagName === "SELECT" || el.isContentEditable);
}

/** The first place near `center` where a new node covers no other (a grid of columns and rows). */
function freeSpot(nodes: GraphNodeModel[], center: XYPosition): XYPosition {
  const covers = (p: XYPosition) =>
    nodes.some((n) => p.x < n.position.x + (n.measured?.width ?? 260) + 20 && n.position.x < p.x + 280 && p.y < n.position.y + (n.measured?.height ?? 150) + 20 && n.position.y < p.y + 150);
  for (let ring = 0; ring < 8; ring++) {
    for (let col = 0; col <= ring; col++) {
      const p = { x: center.x + col * 300, y: center.y + (ring - col) * 170 };
      if (!covers(p)) return p;
    }
  }
  return center;
}

function Canvas() {
  const s = useEditor();
  const flow = useReactFlow();
  const [search, setSearch] = useState<SearchRequest | null>(null);
  const wrapper = useRef<HTMLDivElement>(null);
  // Groups are drawn as canvas nodes under the graph's nodes (graph/groups.ts).
  const flowNodes = useMemo<Node[]>(() => [...groupFlowNodes(s.groups), ...s.nodes], [s.groups, s.nodes]);

  const isValidConnection: IsValidConnection = useCallback(
    (c) => !!s.catalog && connectionProblem(s.catalog, s.nodes, s.edges, { ...c, sourceHandle: c.sourceHandle ?? null, targetHandle: c.targetHandle ?? null }) === null,
    [s.catalog, s.nodes, s.edges],
  );

  const add = (type: string, at?: { x: number; y: number }) => {
    const box = wrapper.current?.getBoundingClientRect();
    const center = box ? flow.screenToFlowPosition({ x: box.left + box.width / 2, y: box.top + box.height / 3 }) : { x: 0, y: 0 };
    return s.addNode(type, at ?? freeSpot(s.nodes, center));
  };

  const pick = (type: string) => {
    if (!search) return;
    const id = add(type, search.flow);
    const from = search.from;
    if (from && s.catalog) {
      const spec = s.catalog.nodes[type];
      if (from.output) {
        const input = spec.inputs.find((i) => accepts(s.catalog!, i.type, from.type));
        if (input) s.connect({ source: from.node, sourceHandle: from.handle, target: id, targetHandle: input.name });
      } else {
        const output = spec.outputs.find((o) => accepts(s.catalog!, from.type, o.type));
        if (output) s.connect({ source: id, sourceHandle: output.name, target: from.node, targetHandle: from.handle });
      }
    }
    setSearch(null);
  };

  const onConnectEnd = (event: MouseEvent | TouchEvent, state: FinalConnectionState) => {
    const point = "changedTouches" in event ? event.changedTouches[0] : event;
    if (state.isValid || !state.fromNode || !state.fromHandle || !s.catalog) return;
    if (state.toHandle) {
      // Dropped on a socket that refused it: say why.
      const from = state.fromHandle;
      const to = state.toHandle;
      const c = from.type === "source"
        ? { source: from.nodeId, sourceHandle: from.id ?? null, target: to.nodeId, targetHandle: to.id ?? null }
        : { source: to.nodeId, sourceHandle: to.id ?? null, target: from.nodeId, targetHandle: from.id ?? null };
      const problem = connectionProblem(s.catalog, s.nodes, s.edges, c);
      if (problem) s.setNotice(`Link refused: ${problem}`);
      return;
    }
    const node = s.nodes.find((n) => n.id === state.fromNode!.id);
    const spec = node && s.catalog.nodes[node.data.type];
    const output = state.fromHandle.type === "source";
    const port = output ? spec?.outputs.find((o) => o.name === state.fromHandle!.id) : spec?.inputs.find((i) => i.name === state.fromHandle!.id);
    if (!port || !node) return;
    const box = wrapper.current!.getBoundingClientRect();
    setSearch({
      screen: { x: point.clientX - box.left, y: point.clientY - box.top },
      flow: flow.screenToFlowPosition({ x: point.clientX, y: point.clientY }),
      only: typesAccepting(s.catalog, port.type, output),
      from: { node: node.id, handle: port.name, type: port.type, output },
    });
  };

  const onDrop = (e: DragEvent) => {
    e.preventDefault();
    const type = e.dataTransfer.getData(DRAG_TYPE);
    if (type) add(type, flow.screenToFlowPosition({ x: e.clientX, y: e.clientY }));
    else if (e.dataTransfer.files[0]) void openFile(e.dataTransfer.files[0]);
  };

  useEffect(() => {
    const key = (e: KeyboardEvent) => {
      const mod = e.ctrlKey || e.metaKey;
      if (mod && e.key === "Enter") {
        e.preventDefault();
        void runGraph();
      } else if (e.key === "Escape") {
        setSearch(null);
        useEditor.setState((st) => ({ notice: null, nodes: st.nodes.map((n) => (n.selected ? { ...n, selected: false } : n)) }));
      } else if (editable(e.target)) return;
      else if (mod && e.key.toLowerCase() === "z") {
        e.preventDefault();
        if (e.shiftKey) useEditor.getState().redo();
        else useEditor.getState().undo();
      } else if (mod && e.key.toLowerCase() === "y") {
        e.preventDefault();
        useEditor.getState().redo();
      } else if (mod && e.key.toLowerCase() === "d") {
        e.preventDefault();
        const doc = useEditor.getState().selectedDoc();
        if (doc) useEditor.getState().paste(doc, { x: 40, y: 40 });
      } else if (mod && e.key.toLowerCase() === "s") {
        e.preventDefault();
        downloadDoc();
      } else if (mod && e.key.toLowerCase() === "g") {
        e.preventDefault();
        useEditor.getState().addGroup("Group");
      }
    };
    // Copy and paste go through the clipboard as graph JSON, so they work between tabs.
    const copy = (e: ClipboardEvent) => {
      if (editable(e.target)) return;
      const doc = useEditor.getState().selectedDoc();
      if (!doc || !e.clipboardData) return;
      e.clipboardData.setData("text/plain", JSON.stringify(doc));
      e.preventDefault();
    };
    const paste = (e: ClipboardEvent) => {
      if (editable(e.target)) return;
      const text = e.clipboardData?.getData("text/plain");
      if (!text) return;
      try {
        const doc = JSON.parse(text) as GraphDoc;
        if (doc && typeof doc.nodes === "object") {
          e.preventDefault();
          useEditor.getState().paste(doc, { x: 40, y: 40 });
        }
      } catch {
        /* not a graph: nothing to paste */
      }
    };
    addEventListener("keydown", key);
    document.addEventListener("copy", copy);
    document.addEventListener("paste", paste);
    return () => {
      removeEventListener("keydown", key);
      document.removeEventListener("copy", copy);
      document.removeEventListener("paste", paste);
    };
  }, []);

  return (
    <div className="main">
      <Palette onPick={(type) => add(type)} />
      <div className="canvas" ref={wrapper} onDragOver={(e) => e.preventDefault()} onDrop={onDrop}>
        <ReactFlow
          nodes={flowNodes}
          edges={s.edges}
          nodeTypes={nodeTypes}
          onNodesChange={(changes: NodeChange[]) => s.onNodesChange(changes as NodeChange<GraphNodeModel>[])}
          onEdgesChange={s.onEdgesChange}
          onConnect={(c) => s.connect(c)}
          onConnectEnd={onConnectEnd}
          onNodeDragStart={(_, node) => {
            const group = groupOfFlowId(node.id);
            if (group) s.startGroupDrag(group);
            else s.checkpoint();
          }}
          onNodeDrag={(_, node) => {
            const group = groupOfFlowId(node.id);
            if (group) s.dragGroup(group, node.position);
          }}
          onNodeDragStop={(_, node) => {
            const group = groupOfFlowId(node.id);
            if (group) {
              s.dragGroup(group, node.position);
              s.endGroupDrag();
            }
          }}
          isValidConnection={isValidConnection}
          onDoubleClick={(e) => {
            if (!(e.target as HTMLElement).classList.contains("react-flow__pane")) return;
            const box = wrapper.current!.getBoundingClientRect();
            setSearch({ screen: { x: e.clientX - box.left, y: e.clientY - box.top }, flow: flow.screenToFlowPosition({ x: e.clientX, y: e.clientY }) });
          }}
          zoomOnDoubleClick={false}
          deleteKeyCode={["Delete", "Backspace"]}
          multiSelectionKeyCode={["Shift", "Control", "Meta"]}
          minZoom={0.1}
          fitView
          onlyRenderVisibleElements
          colorMode="dark"
        >
          <Background />
          <Controls />
          <MiniMap pannable zoomable nodeClassName={(n) => (n.type === "groupBox" ? "minimap-group" : "")} />
        </ReactFlow>
        {search && <SearchPopup request={search} onPick={pick} onClose={() => setSearch(null)} />}
      </div>
      <SidePanel />
    </div>
  );
}

export function App() {
  const notice = useEditor((s) => s.notice);
  const setNotice = useEditor((s) => s.setNotice);
  const validation = useEditor((s) => s.validation);
  const details = useEditor((s) => s.noticeDetails);
  return (
    <ReactFlowProvider>
      <Toolbar onRun={runGraph} onInterrupt={interruptShown} />
      <Canvas />
      {(notice || validation.length > 0) && (
        <div className="notice" role="status" data-notice>
          <span>{notice}</span>
          {details.length > 0 && <ul data-notice-details>{details.map((d, i) => <li key={i}>{d}</li>)}</ul>}
          {validation.length > 0 && (
            <ul>{validation.map((e, i) => <li key={i}>{e.node_id ? `${e.node_id}${e.input ? `.${e.input}` : ""}: ` : ""}{e.message}</li>)}</ul>
          )}
          <button onClick={() => setNotice(null)} aria-label="dismiss">×</button>
        </div>
      )}
    </ReactFlowProvider>
  );
}
