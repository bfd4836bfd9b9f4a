// What a dropped or chosen file holds: our graph document, or a workflow in another format
// (ComfyUI's API or editor JSON, or the `prompt`/`workflow` chunks of a ComfyUI PNG) that the
// server converts (POST /api/v1/graphs/convert).
import type { GraphDoc } from "../api/types";
import { GRAPH_CHUNK, pngTextChunks } from "./png";

/** ComfyUI writes the API-format prompt and the editor workflow into these PNG text chunks. */
const COMFY_CHUNKS = ["prompt", "workflow"] as const;

export type FileContent = { kind: "graph"; doc: GraphDoc } | { kind: "foreign"; document: unknown };

/** Ours has `nodes` as an object of entries (ComfyUI's editor format has a list), as the server decides. */
export function isGraphDoc(value: unknown): value is GraphDoc {
  if (!value || typeof value !== "object" || Array.isArray(value)) return false;
  const nodes = (value as { nodes?: unknown }).nodes;
  return !!nodes && typeof nodes === "object" && !Array.isArray(nodes) && !("class_type" in nodes);
}

/** Read a file's bytes; throws with a reason a person can act on when it holds no graph. */
export function readGraphFile(name: string, mime: string, bytes: Uint8Array): FileContent {
  if (mime === "image/png" || name.toLowerCase().endsWith(".png")) {
    const chunks = pngTextChunks(bytes);
    if (chunks[GRAPH_CHUNK] !== undefined) return graphOrForeign(parse(chunks[GRAPH_CHUNK], `its ${GRAPH_CHUNK} chunk`));
    const found: Record<string, unknown> = {};
    for (const key of COMFY_CHUNKS) if (chunks[key] !== undefined) found[key] = parse(chunks[key], `its ${key} chunk`);
    if (!Object.keys(found).length) throw new Error("this PNG carries no graph (neither Latentgraph's nor ComfyUI's)");
    return { kind: "foreign", document: found };
  }
  return graphOrForeign(parse(new TextDecoder().decode(bytes), "the file"));
}

function graphOrForeign(value: unknown): FileContent {
  if (isGraphDoc(value)) return { kind: "graph", doc: value };
  if (!value || typeof value !== "object" || Array.isArray(value)) throw new Error("not a graph document or a ComfyUI workflow");
  return { kind: "foreign", document: value };
}

function parse(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${what} is not valid JSON (${e instanceof Error ? e.message : String(e)})`);
  }
}
