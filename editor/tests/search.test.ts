import { describe, expect, it } from "vitest";
import { fuzzyFilter, fuzzyScore } from "../src/graph/search";

describe("fuzzy search", () => {
  it("matches letters in order and ranks substrings and word starts first", () => {
    const names = ["VAEDecode", "VAEDecodeTiled", "Sample", "EmptyLatent", "LoadCheckpoint"];
    expect(fuzzyFilter(names, "decode", (n) => n)).toEqual(["VAEDecode", "VAEDecodeTiled"]);
    expect(fuzzyFilter(names, "ltnt", (n) => n)).toEqual(["EmptyLatent"]);
    expect(fuzzyFilter(names, "ckpt", (n) => n)).toEqual(["LoadCheckpoint"]);
    expect(fuzzyScore("zzz", "Sample")).toBeNull();
  });
});
