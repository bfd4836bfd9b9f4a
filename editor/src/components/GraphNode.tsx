// The one node component: every node type is drawn from its catalog entry.
import { Handle, Position, type NodeProps } from "@xyflow/react";
import { memo } from "react";
import { withToken } from "../api/http";
import type { InputSpec, NodeCatalog } from "../api/types";
import type { GraphNode as GraphNodeType } from "../graph/model";
import { outputImages } from "../state/run";
import { useEditor } from "../state/store";
import { Widget } from "./widgets";

function socketColor(catalog: NodeCatalog, type: string): string {
  return catalog.types[type]?.color ?? "#888";
}

export const GraphNode = memo(function GraphNode({ id, data, selected }: NodeProps<GraphNodeType>) {
  const catalog = useEditor((s) => s.catalog)!;
  const run = useEditor((s) => (s.shownJob ? s.runs[s.shownJob]?.nodes[id] : undefined));
  const jobError = useEditor((s) => {
    const job = s.shownJob ? s.runs[s.shownJob] : undefined;
    return job?.error?.node_id === id ? job.error : undefined;
  });
  const preview = useEditor((s) => s.previews[id]);
  const validation = useEditor((s) => s.validation);
  const linked = useEditor((s) => s.edges);
  const setValue = useEditor((s) => s.setValue);
  const toggleSocket = useEditor((s) => s.toggleSocket);
  const spec = catalog.nodes[data.type];
  const errors = validation.filter((e) => e.node_id === id);
  const nodeErrors = errors.filter((e) => !e.input || !spec?.inputs.some((i) => i.name === e.input));
  const status = run?.status;
  const classes = ["lg-node", selected && "selected", status && `run-${status}`, (errors.length || jobError) && "has-error"];
  const images = outputImages(run?.output);

  if (!spec) {
    return (
      <div className={classes.filter(Boolean).join(" ")} data-node-id={id} data-node-type={data.type}>
        <div className="lg-header">{data.type} <span className="lg-type">unknown type</span></div>
        {errors.map((e, i) => <div key={i} className="node-error">{e.message}</div>)}
      </div>
    );
  }
  const isConnected = (input: string) => linked.some((e) => e.target === id && e.targetHandle === input);
  const row = (input: InputSpec) => {
    const socket = input.link_only || data.sockets.includes(input.name);
    const error = errors.find((e) => e.input === input.name);
    return (
      <div key={input.name} className={`lg-row${error ? " has-error" : ""}`} data-input-row={input.name} title={input.tooltip || undefined}>
        {socket && (
          <Handle type="target" position={Position.Left} id={input.name} className="socket"
            style={{ background: socketColor(catalog, input.type) }} data-socket-type={input.type} />
        )}
        <label htmlFor={`in-${id}-${input.name}`} className="lg-label">
          {input.display_name}
          {!input.required && !socket ? "" : input.required && socket && !isConnected(input.name) ? " *" : ""}
        </label>
        {!socket && <Widget spec={input} value={data.values[input.name]} nodeId={id} onChange={(v) => setValue(id, input.name, v)} />}
        {socket && <span className="lg-type">{input.type}</span>}
        {!input.link_only && (
          <button className="to-socket nodrag" title={socket ? "show as a widget" : "turn into a socket"} data-toggle-socket={input.name}
            onClick={() => toggleSocket(id, input.name)}>{socket ? "✎" : "⊸"}</button>
        )}
        {error && <div className="input-error" data-error-input={input.name}>{error.message}</div>}
      </div>
    );
  };
  return (
    <div className={classes.filter(Boolean).join(" ")} data-node-id={id} data-node-type={data.type} data-run-status={status ?? ""}>
      <div className="lg-header">
        <span className="lg-title">{data.title ?? spec.display_name}</span>
        <span className="lg-id">{id}</span>
        {status === "cached" && <span className="badge cached" data-badge="cached">cached</span>}
        {run?.seconds !== undefined && status !== "cached" && <span className="badge time" data-badge="time">{run.seconds.toFixed(2)} s</span>}
        {status === "stopped" && <span className="badge stopped">interrupted</span>}
      </div>
      {status === "running" && (
        <div className="progress" data-progress>
          <div style={{ width: `${run?.progress ? (100 * run.progress.value) / run.progress.max : 5}%` }} />
        </div>
      )}
      <div className="lg-outputs">
        {spec.outputs.map((o) => (
          <div key={o.name} className="lg-row out">
            <span className="lg-type">{o.type}</span>
            <span className="lg-label">{o.display_name}</span>
            <Handle type="source" position={Position.Right} id={o.name} className="socket" style={{ background: socketColor(catalog, o.type) }} data-socket-type={o.type} />
          </div>
        ))}
      </div>
      <div className="lg-inputs">{spec.inputs.map(row)}</div>
      {nodeErrors.map((e, i) => <div key={i} className="node-error">{e.message}</div>)}
      {jobError && (
        <div className="node-error runtime" data-runtime-error>
          {jobError.exception_type ? `${jobError.exception_type}: ` : ""}{jobError.message}
          {jobError.traceback.length > 0 && (
            <details className="nodrag nowheel"><summary>traceback</summary><pre>{jobError.traceback.join("")}</pre></details>
          )}
        </div>
      )}
      {preview && status === "running" && <img className="preview" alt="sampler preview" data-preview src={preview} />}
      {images.length > 0 && (
        <div className="lg-images">
          {images.map((img) => <img key={img.url} alt={img.filename} data-output-image={img.filename} src={withToken(img.url)} />)}
        </div>
      )}
      {Array.isArray(run?.output?.text) && <pre className="lg-text">{(run!.output!.text as unknown[]).join("\n")}</pre>}
    </div>
  );
});
