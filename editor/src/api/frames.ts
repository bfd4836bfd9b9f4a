// Binary websocket frames (docs/api/websocket.md, "Binary frames: previews").

export interface PreviewFrame {
  jobId: string;
  nodeId: string;
  seq: number;
  mime: string;
  image: Uint8Array;
}

/** A preview frame's header and image; null for a frame of another kind. */
export function parsePreviewFrame(buffer: ArrayBuffer): PreviewFrame | null {
  const view = new DataView(buffer);
  if (buffer.byteLength < 8 || view.getUint32(0) !== 1) return null;
  const length = view.getUint32(4);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 8, length)));
  return { jobId: header.job_id, nodeId: header.node_id, seq: header.seq, mime: header.mime, image: new Uint8Array(buffer, 8 + length) };
}
