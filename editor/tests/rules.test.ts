import { describe, expect, it } from "vitest";
import type { GraphDoc, NodeCatalog } from "../src/api/types";
import { docToState } from "../src/graph/convert";
import { accepts, connectionProblem, typesAccepting } from "../src/graph/rules";
import catalogJson from "./fixtures/catalog.json";
import txt2img from "./fixtures/txt2img.json";

const catalog = catalogJson as unknown as NodeCatalog;
const state = docToState(txt2img as unknown as GraphDoc, catalog);

describe("connection rules", () => {
  it("follows the port types: equal, ANY, and widening (INT feeds FLOAT, not back)", () => {
    expect(accepts(catalog, "LATENT", "LATENT")).toBe(true);
    expect(accepts(catalog, "FLOAT", "INT")).toBe(true);
    expect(accepts(catalog, "INT", "FLOAT")).toBe(false);
    expect(accepts(catalog, "IMAGE", "LATENT")).toBe(false);
  });

  it("refuses a link of the wrong type with the reason", () => {
    const c = { source: "checkpoint", sourceHandle: "vae", target: "sampler", targetHandle: "model" };
    expect(connectionProblem(catalog, state.nodes, state.edges, c)).toBe("VAE cannot feed model (MODEL)");
  });

  it("allows replacing the link on an occupied input", () => {
    const c = { source: "negative", sourceHandle: "conditioning", target: "sampler", targetHandle: "positive" };
    expect(connectionProblem(catalog, state.nodes, state.edges, c)).toBeNull();
  });

  it("refuses cycles and self-links", () => {
    const c = { source: "decode", sourceHandle: "image", target: "decode", targetHandle: "latent" };
    expect(connectionProblem(catalog, state.nodes, state.edges, c)).toBe("a node cannot feed itself");
    const doc: GraphDoc = {
      version: 1,
      nodes: { a: { type: "UpscaleLatent", links: { latent: "b.latent" } }, b: { type: "UpscaleLatent" } },
      editor: { nodes: { a: { position: [0, 0] }, b: { position: [1, 1] } } },
    };
    const s = docToState(doc, catalog);
    const back = { source: "a", sourceHandle: "latent", target: "b", targetHandle: "latent" };
    expect(connectionProblem(catalog, s.nodes, s.edges, back)).toBe("that link would make a cycle");
  });

  it("lists the node types a dropped link can connect to", () => {
    const fromLatent = typesAccepting(catalog, "LATENT", true);
    expect(fromLatent).toContain("VAEDecode");
    expect(fromLatent).not.toContain("LoadCheckpoint");
    expect(typesAccepting(catalog, "MODEL", false)).toContain("LoadCheckpoint");
  });
});
