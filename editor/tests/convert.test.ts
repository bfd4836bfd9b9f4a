import { describe, expect, it } from "vitest";
import type { GraphDoc, NodeCatalog } from "../src/api/types";
import { docToState, freshId, pasteState, stateToDoc } from "../src/graph/convert";
import catalogJson from "./fixtures/catalog.json";
import txt2img from "./fixtures/txt2img.json";

const catalog = catalogJson as unknown as NodeCatalog;

describe("graph JSON ⇄ editor state", () => {
  it("round-trips txt2img: same nodes, values, links and positions", () => {
    const doc = txt2img as unknown as GraphDoc;
    const back = stateToDoc(docToState(doc, catalog), catalog);
    for (const [id, entry] of Object.entries(doc.nodes)) {
      expect(back.nodes[id].type).toBe(entry.type);
      expect(back.nodes[id].links ?? {}).toEqual(entry.links ?? {});
      // Every value in the file is kept; defaults the file left out are written explicitly.
      expect(back.nodes[id].inputs).toMatchObject(entry.inputs ?? {});
      expect(back.editor!.nodes![id].position).toEqual(doc.editor!.nodes![id].position);
    }
    expect(Object.keys(back.nodes)).toEqual(Object.keys(doc.nodes));
  });

  it("is stable: converting the saved document again gives the same document", () => {
    const once = stateToDoc(docToState(txt2img as unknown as GraphDoc, catalog), catalog);
    expect(stateToDoc(docToState(once, catalog), catalog)).toEqual(once);
  });

  it("lays out a graph without positions left to right along its links", () => {
    const doc: GraphDoc = { version: 1, nodes: { a: { type: "Text", inputs: { text: "x" } }, b: { type: "ShowText", links: { text: "a.text" } } } };
    const state = docToState(doc, catalog);
    const [a, b] = state.nodes;
    expect(Number.isFinite(a.position.x) && Number.isFinite(b.position.x)).toBe(true);
    expect(b.position.x).toBeGreaterThan(a.position.x);
  });

  it("turns a linked literal input into a socket and writes it back as a link only", () => {
    const doc: GraphDoc = {
      version: 1,
      nodes: { seed: { type: "Int", inputs: { value: 5 } }, s: { type: "EmptyLatent", links: { width: "seed.value" } } },
      editor: { nodes: { seed: { position: [0, 0] }, s: { position: [300, 0] } } },
    };
    const state = docToState(doc, catalog);
    expect(state.nodes[1].data.sockets).toEqual(["width"]);
    const back = stateToDoc(state, catalog);
    expect(back.nodes.s.links).toEqual({ width: "seed.value" });
    expect(back.nodes.s.inputs).not.toHaveProperty("width");
  });

  it("keeps groups and titles in the editor layer", () => {
    const doc: GraphDoc = {
      version: 1,
      nodes: { a: { type: "Text", inputs: { text: "x" } } },
      editor: { nodes: { a: { position: [1, 2], title: "Prompt" } }, groups: [{ title: "G", bounding: [0, 0, 100, 50] }] },
    };
    const back = stateToDoc(docToState(doc, catalog), catalog);
    expect(back.editor).toEqual(doc.editor);
  });

  it("names new nodes after their type, numbered past ids in use", () => {
    expect(freshId("EmptyLatent", [])).toBe("empty_latent");
    expect(freshId("VAEDecode", ["vaedecode"])).toBe("vaedecode_2");
    expect(freshId("Sample", ["sample", "sample_2"])).toBe("sample_3");
  });

  it("pastes under fresh ids, shifted, keeping links inside the pasted set only", () => {
    const doc: GraphDoc = {
      version: 1,
      nodes: { a: { type: "Text", inputs: { text: "x" } }, b: { type: "ShowText", links: { text: "a.text" } }, c: { type: "ShowText", links: { text: "z.text" } } },
      editor: { nodes: { a: { position: [0, 0] }, b: { position: [300, 0] }, c: { position: [300, 200] } } },
    };
    const pasted = pasteState(doc, catalog, ["a", "b"], { x: 40, y: 40 });
    const ids = pasted.nodes.map((n) => n.id);
    expect(ids).toEqual(["text", "show_text", "c"]);
    expect(pasted.nodes[0].position).toEqual({ x: 40, y: 40 });
    expect(pasted.edges.map((e) => [e.source, e.target])).toEqual([["text", "show_text"]]);
  });
});
