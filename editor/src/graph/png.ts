// Reads the text chunks of a PNG (the graph Latentgraph or ComfyUI wrote into it). Written by hand: PNG
// tEXt/iTXt parsing is ~30 lines and no small, maintained browser package does only this.
export const GRAPH_CHUNK = "latentgraph.graph";
const SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];

/** The text chunks of a PNG (tEXt, and uncompressed iTXt), by keyword; throws if it is not a PNG. */
export function pngTextChunks(bytes: Uint8Array): Record<string, string> {
  if (!SIGNATURE.every((b, i) => bytes[i] === b)) throw new Error("not a PNG file");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const latin1 = new TextDecoder("latin1");
  const utf8 = new TextDecoder("utf-8");
  const found: Record<string, string> = {};
  let at = 8;
  while (at + 8 <= bytes.length) {
    const length = view.getUint32(at);
    const kind = latin1.decode(bytes.subarray(at + 4, at + 8));
    const body = bytes.subarray(at + 8, at + 8 + length);
    if (kind === "tEXt") {
      const zero = body.indexOf(0);
      found[latin1.decode(body.subarray(0, zero))] = latin1.decode(body.subarray(zero + 1));
    } else if (kind === "iTXt") {
      const zero = body.indexOf(0);
      const compressed = body[zero + 1];
      let rest = zero + 3;
      rest = body.indexOf(0, rest) + 1; // language tag
      rest = body.indexOf(0, rest) + 1; // translated keyword
      if (!compressed) found[latin1.decode(body.subarray(0, zero))] = utf8.decode(body.subarray(rest));
    } else if (kind === "IEND") break;
    at += 12 + length;
  }
  return found;
}
