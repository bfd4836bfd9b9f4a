// One form control per literal input, chosen from the input's catalog entry.
import { useRef, useState, type PointerEvent } from "react";
import { api, ApiFailure, withToken } from "../api/http";
import type { InputSpec } from "../api/types";
import { useEditor } from "../state/store";

interface WidgetProps {
  spec: InputSpec;
  value: unknown;
  onChange(value: unknown): void;
  nodeId: string;
}

/** The widget for an input: choices, toggle, number, seed, text, or image upload. */
export function Widget(props: WidgetProps) {
  const { spec } = props;
  if (spec.name === "image" && spec.dynamic_choices) return <ImageWidget {...props} />;
  if (spec.choices) return <ChoiceWidget {...props} />;
  if (spec.type === "BOOLEAN") return <ToggleWidget {...props} />;
  if (spec.type === "INT" || spec.type === "FLOAT") return <NumberWidget {...props} />;
  return <TextWidget {...props} />;
}

function inputId(p: WidgetProps) {
  return `in-${p.nodeId}-${p.spec.name}`;
}

function ChoiceWidget(p: WidgetProps) {
  const choices = p.spec.choices ?? [];
  const missing = !choices.some((c) => c === p.value);
  return (
    <select id={inputId(p)} className="nodrag" data-input={p.spec.name} value={String(p.value ?? "")}
      onChange={(e) => p.onChange(choices.find((c) => String(c) === e.target.value) ?? e.target.value)}>
      {missing && <option value={String(p.value ?? "")}>{String(p.value ?? "(none)")} (missing)</option>}
      {choices.map((c) => (
        <option key={String(c)} value={String(c)}>{String(c)}</option>
      ))}
    </select>
  );
}

function ToggleWidget(p: WidgetProps) {
  return <input id={inputId(p)} className="nodrag" data-input={p.spec.name} type="checkbox" checked={p.value === true} onChange={(e) => p.onChange(e.target.checked)} />;
}

function TextWidget(p: WidgetProps) {
  const text = typeof p.value === "string" ? p.value : p.value == null ? "" : JSON.stringify(p.value);
  return p.spec.multiline ? (
    <textarea id={inputId(p)} className="nodrag nowheel" data-input={p.spec.name} rows={3} value={text} onChange={(e) => p.onChange(e.target.value)} />
  ) : (
    <input id={inputId(p)} className="nodrag" data-input={p.spec.name} type="text" value={text} onChange={(e) => p.onChange(e.target.value)} />
  );
}

/** The number's step: the input's step, its multiple_of, or 1 for integers and 0.01 for floats. */
export function numberStep(spec: InputSpec): number {
  return spec.step ?? spec.multiple_of ?? (spec.type === "INT" ? 1 : 0.01);
}

/** A number clamped to the input's bounds and snapped to its step. */
export function clampNumber(spec: InputSpec, value: number): number {
  const step = numberStep(spec);
  const base = spec.ge ?? spec.gt ?? 0;
  let v = spec.multiple_of || spec.type === "INT" ? base + Math.round((value - base) / step) * step : value;
  if (spec.ge != null) v = Math.max(spec.ge, v);
  if (spec.le != null) v = Math.min(spec.le, v);
  if (spec.type === "INT") v = Math.round(v);
  return Number(v.toFixed(6));
}

function NumberWidget(p: WidgetProps) {
  const { spec } = p;
  const [draft, setDraft] = useState<string | null>(null);
  const drag = useRef<{ x: number; start: number } | null>(null);
  const step = numberStep(spec);
  const current = typeof p.value === "number" ? p.value : Number(p.value ?? 0);
  const commit = (text: string) => {
    setDraft(null);
    if (text.trim() === "") return;
    const parsed = Number(text);
    // An out-of-range number is kept as typed, so the server's error names it on this input.
    if (!Number.isNaN(parsed)) p.onChange(spec.type === "INT" && Number.isInteger(parsed) ? parsed : parsed);
  };
  // Drag the label sideways to scrub the value by steps.
  const down = (e: PointerEvent<HTMLSpanElement>) => {
    drag.current = { x: e.clientX, start: current };
    e.currentTarget.setPointerCapture(e.pointerId);
  };
  const move = (e: PointerEvent<HTMLSpanElement>) => {
    if (!drag.current) return;
    const steps = Math.round((e.clientX - drag.current.x) / 6);
    if (steps) p.onChange(clampNumber(spec, drag.current.start + steps * step));
  };
  const isSeed = spec.name === "seed" && spec.type === "INT";
  return (
    <span className="number">
      <span className="scrub nodrag" title="drag to change" onPointerDown={down} onPointerMove={move} onPointerUp={() => (drag.current = null)}>↔</span>
      <input id={inputId(p)} className="nodrag" data-input={spec.name} type="number" step={step}
        min={spec.ge ?? undefined} max={spec.le ?? undefined}
        value={draft ?? String(current)}
        onChange={(e) => setDraft(e.target.value)}
        onBlur={(e) => commit(e.target.value)}
        onKeyDown={(e) => { if (e.key === "Enter") commit((e.target as HTMLInputElement).value); }} />
      {isSeed && <SeedMode nodeId={p.nodeId} input={spec.name} />}
    </span>
  );
}

function SeedMode({ nodeId, input }: { nodeId: string; input: string }) {
  const random = useEditor((s) => s.nodes.find((n) => n.id === nodeId)?.data.randomize?.includes(input) ?? false);
  const updateData = useEditor((s) => s.updateData);
  const list = () => useEditor.getState().nodes.find((n) => n.id === nodeId)?.data.randomize ?? [];
  return (
    <select className="nodrag seed-mode" data-seed-mode={input} value={random ? "random" : "fixed"} title="what the seed does after each run"
      onChange={(e) => updateData(nodeId, { randomize: e.target.value === "random" ? [...list(), input] : list().filter((x) => x !== input) })}>
      <option value="fixed">fixed</option>
      <option value="random">random after run</option>
    </select>
  );
}

function ImageWidget(p: WidgetProps) {
  const [error, setError] = useState<string | null>(null);
  const [extra, setExtra] = useState<string[]>([]);
  const choices = [...new Set([...(p.spec.choices ?? []).map(String), ...extra])];
  const name = typeof p.value === "string" ? p.value : "";
  const upload = async (file: File | undefined) => {
    if (!file) return;
    try {
      const stored = await api.upload(file);
      const value = stored.subfolder ? `${stored.subfolder}/${stored.name}` : stored.name;
      setExtra((x) => [...x, value]);
      setError(null);
      p.onChange(value);
    } catch (e) {
      setError(e instanceof ApiFailure ? e.message : String(e));
    }
  };
  return (
    <span className="image-input">
      <select id={inputId(p)} className="nodrag" data-input={p.spec.name} value={name} onChange={(e) => p.onChange(e.target.value)}>
        {!choices.includes(name) && <option value={name}>{name || "(none)"}</option>}
        {choices.map((c) => <option key={c} value={c}>{c}</option>)}
      </select>
      <label className="upload nodrag">upload<input type="file" accept="image/*" hidden data-upload={p.spec.name} onChange={(e) => upload(e.target.files?.[0])} /></label>
      {name && choices.includes(name) && <img className="thumb" alt={name} src={withToken(`/api/v1/view?type=input&filename=${encodeURIComponent(name.split("/").pop()!)}&subfolder=${encodeURIComponent(name.includes("/") ? name.slice(0, name.lastIndexOf("/")) : "")}`)} />}
      {error && <span className="input-error">{error}</span>}
    </span>
  );
}
