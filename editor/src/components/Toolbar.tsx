// The toolbar: file operations, example graphs, layout, undo/redo, run and interrupt.
import { useReactFlow } from "@xyflow/react";
import { useEffect, useRef, useState } from "react";
import { api } from "../api/http";
import { downloadDoc, openExample, openFile } from "../state/controller";
import { useEditor } from "../state/store";

export function Toolbar({ onRun, onInterrupt }: { onRun(): void; onInterrupt(): void }) {
  const [examples, setExamples] = useState<string[]>([]);
  const file = useRef<HTMLInputElement>(null);
  const flow = useReactFlow();
  const name = useEditor((s) => s.name);
  const connected = useEditor((s) => s.connected);
  const counts = useEditor((s) => s.queueCounts);
  const run = useEditor((s) => (s.shownJob ? s.runs[s.shownJob] : undefined));
  const canUndo = useEditor((s) => s.history.past.length > 0);
  const canRedo = useEditor((s) => s.history.future.length > 0);
  useEffect(() => {
    api.examples().then((list) => setExamples(list.graphs.map((g) => g.name))).catch(() => {});
  }, []);
  const fit = () => setTimeout(() => flow.fitView({ duration: 0 }), 50);
  return (
    <header className="toolbar">
      <strong className="brand">Latentgraph</strong>
      <span className="doc-name" data-doc-name>{name}</span>
      <button data-new onClick={() => { useEditor.getState().loadDoc({ version: 1, nodes: {} }, "untitled"); flow.setViewport({ x: 0, y: 0, zoom: 1 }); }}>New</button>
      <button onClick={() => file.current?.click()}>Open…</button>
      <input ref={file} type="file" accept=".json,.png,application/json,image/png" hidden data-open-file
        onChange={(e) => { const f = e.target.files?.[0]; if (f) void openFile(f).then(fit); e.target.value = ""; }} />
      <button onClick={downloadDoc} title="Ctrl+S">Save</button>
      <select aria-label="example graphs" data-examples value="" onChange={(e) => { if (e.target.value) void openExample(e.target.value).then(fit); }}>
        <option value="">Examples…</option>
        {examples.map((n) => <option key={n} value={n}>{n}</option>)}
      </select>
      <button onClick={() => { useEditor.getState().layout(); fit(); }}>Layout</button>
      <button onClick={() => useEditor.getState().addGroup("Group")} title="group the selected nodes (Ctrl+G)">Group</button>
      <button disabled={!canUndo} onClick={() => useEditor.getState().undo()} title="Ctrl+Z">Undo</button>
      <button disabled={!canRedo} onClick={() => useEditor.getState().redo()} title="Ctrl+Shift+Z">Redo</button>
      <span className="spacer" />
      {run && <span className={`run-status ${run.status}`} data-run-state={run.status}>{run.status}</span>}
      <span className="queue-count" title="pending / running">queue {counts.pending}+{counts.running}</span>
      <span className={`conn ${connected ? "on" : "off"}`} data-connected={connected} title={connected ? "connected" : "reconnecting…"}>●</span>
      {run?.status === "running" && <button onClick={onInterrupt} data-interrupt>Interrupt</button>}
      <button className="run" onClick={onRun} title="Ctrl+Enter" data-run>Run ▶</button>
    </header>
  );
}
