import { describe, expect, it } from "vitest";
import { isGraphDoc, readGraphFile } from "../src/graph/files";

const json = (value: unknown) => new TextEncoder().encode(typeof value === "string" ? value : JSON.stringify(value));
const read = (value: unknown) => readGraphFile("g.json", "application/json", json(value));

describe("opening files", () => {
  it("loads our graph documents as they are", () => {
    const doc = { version: 1, nodes: { a: { type: "Text", inputs: { text: "hi" } } } };
    expect(read(doc)).toEqual({ kind: "graph", doc });
    expect(isGraphDoc({ version: 1, nodes: {} })).toBe(true);
  });

  it("sends ComfyUI's API and editor formats to the server for conversion", () => {
    const api = { "3": { class_type: "KSampler", inputs: { seed: 1 } }, "4": { class_type: "CheckpointLoaderSimple", inputs: {} } };
    expect(read(api)).toEqual({ kind: "foreign", document: api });
    const workflow = { last_node_id: 1, nodes: [{ id: 1, type: "KSampler" }], links: [], version: 0.4 };
    expect(read(workflow)).toEqual({ kind: "foreign", document: workflow });
    // A ComfyUI node that happens to be named "nodes" is still ComfyUI's.
    expect(isGraphDoc({ nodes: { class_type: "KSampler", inputs: {} } })).toBe(false);
  });

  it("says why when a file holds no graph", () => {
    expect(() => read("{not json")).toThrow("the file is not valid JSON");
    expect(() => read([1, 2])).toThrow("not a graph document or a ComfyUI workflow");
    expect(() => read("3")).toThrow("not a graph document or a ComfyUI workflow");
  });
});
