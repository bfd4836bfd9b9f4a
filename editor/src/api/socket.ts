// The one module that owns the websocket: per-job sequence cursors, in-order delivery with no
// duplicates, and reconnecting with resume=JOB_ID:SEQ after a drop or a server restart.
import { parsePreviewFrame, type PreviewFrame } from "./frames";
import { getToken } from "./http";
import type { JobMessage, ServerMessage } from "./types";

export interface SocketHandlers {
  job(message: JobMessage): void;
  preview(frame: PreviewFrame): void;
  queue(pending: number, running: number): void;
  connection(connected: boolean): void;
}

const TERMINAL = new Set(["job_finished", "job_failed", "job_interrupted", "job_cancelled"]);

/** Delivers each job's events exactly once and in seq order, across reconnects. */
export class JobSocket {
  private ws: WebSocket | null = null;
  private readonly cursors = new Map<string, number>();
  private readonly active = new Set<string>();
  private readonly held = new Map<string, Map<number, JobMessage>>();
  private retries = 0;
  private closed = false;

  constructor(
    private readonly clientId: string,
    private readonly handlers: SocketHandlers,
  ) {}

  /** Follow a job from after `afterSeq` (its events come by client id; this also covers restarts). */
  follow(jobId: string, afterSeq = 0): void {
    if (!this.cursors.has(jobId)) this.cursors.set(jobId, afterSeq);
    this.active.add(jobId);
    this.send({ type: "subscribe", data: { job_id: jobId, after_seq: this.cursors.get(jobId) } });
  }

  connect(): void {
    this.closed = false;
    const params = new URLSearchParams({ client_id: this.clientId });
    for (const job of this.active) params.append("resume", `${job}:${this.cursors.get(job) ?? 0}`);
    const token = getToken();
    if (token) params.set("token", token);
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/ws?${params}`);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => {
      this.retries = 0;
      this.handlers.connection(true);
    };
    ws.onmessage = (event) => this.receive(event.data);
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.handlers.connection(false);
      if (!this.closed) setTimeout(() => this.connect(), Math.min(4000, 200 * 2 ** this.retries++));
    };
    this.ws = ws;
  }

  close(): void {
    this.closed = true;
    this.ws?.close();
  }

  private send(message: object): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  private receive(data: string | ArrayBuffer): void {
    if (typeof data !== "string") {
      const frame = parsePreviewFrame(data);
      if (frame) this.handlers.preview(frame);
      return;
    }
    const message = JSON.parse(data) as ServerMessage;
    if (message.type === "queue") this.handlers.queue(message.data.pending, message.data.running);
    else if (message.data && "seq" in message.data) this.deliver(message as JobMessage);
  }

  private deliver(message: JobMessage): void {
    const { job_id: job, seq } = message.data;
    const cursor = this.cursors.get(job) ?? 0;
    if (seq <= cursor) return; // already delivered (a replay overlapping live events)
    if (seq > cursor + 1) {
      // Something in between is missing: hold this one and ask for the rest.
      const held = this.held.get(job) ?? new Map<number, JobMessage>();
      const first = held.size === 0;
      held.set(seq, message);
      this.held.set(job, held);
      if (first) this.send({ type: "subscribe", data: { job_id: job, after_seq: cursor } });
      return;
    }
    let next: JobMessage | undefined = message;
    while (next) {
      this.cursors.set(job, next.data.seq);
      if (TERMINAL.has(next.type)) this.active.delete(job);
      else this.active.add(job);
      this.handlers.job(next);
      const held = this.held.get(job);
      next = held?.get(next.data.seq + 1);
      if (next) held!.delete(next.data.seq);
    }
  }
}
