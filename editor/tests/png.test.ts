import { describe, expect, it } from "vitest";
import { readGraphFile } from "../src/graph/files";
import { pngTextChunks } from "../src/graph/png";

function chunk(kind: string, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + body.length);
  new DataView(out.buffer).setUint32(0, body.length);
  out.set(new TextEncoder().encode(kind), 4);
  out.set(body, 8);
  return out; // the CRC is not checked by the reader
}

function png(...chunks: Uint8Array[]): Uint8Array {
  const parts = [new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]), ...chunks, chunk("IEND", new Uint8Array())];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const text = (key: string, value: string) => chunk("tEXt", new TextEncoder().encode(`${key}\0${value}`));

const read = (file: Uint8Array) => readGraphFile("a.png", "image/png", file);

describe("PNG text chunks", () => {
  it("reads the graph a Latentgraph PNG carries", () => {
    const file = png(text("parameters", "{}"), text("latentgraph.graph", '{"version":1,"nodes":{}}'));
    expect(pngTextChunks(file).parameters).toBe("{}");
    expect(read(file)).toEqual({ kind: "graph", doc: { version: 1, nodes: {} } });
  });

  it("hands the prompt and workflow of a ComfyUI PNG over for conversion", () => {
    const prompt = { "3": { class_type: "KSampler", inputs: {} } };
    const workflow = { nodes: [{ id: 3, type: "KSampler" }], links: [] };
    const file = png(text("prompt", JSON.stringify(prompt)), text("workflow", JSON.stringify(workflow)));
    expect(read(file)).toEqual({ kind: "foreign", document: { prompt, workflow } });
    expect(read(png(text("prompt", JSON.stringify(prompt))))).toEqual({ kind: "foreign", document: { prompt } });
  });

  it("says why when there is no graph, no JSON or no PNG", () => {
    expect(() => read(png(text("parameters", "{}")))).toThrow("carries no graph");
    expect(() => read(png(text("workflow", "{oops")))).toThrow("workflow chunk is not valid JSON");
    expect(() => read(new Uint8Array([1, 2, 3]))).toThrow("not a PNG");
  });
});
