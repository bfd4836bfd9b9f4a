// A job's state on the canvas, folded from its event log: a pure reducer, so replays are exact.
import type { JobError, JobMessage } from "../api/types";

export type NodeRunStatus = "running" | "done" | "cached" | "failed" | "stopped";
export type UiOutput = { [key: string]: unknown[] } | null;

export interface NodeRun {
  status: NodeRunStatus;
  seconds?: number;
  progress?: { value: number; max: number };
  output?: UiOutput;
}

export type JobStatus = "pending" | "running" | "finished" | "failed" | "interrupted" | "cancelled";

export interface JobRun {
  jobId: string;
  status: JobStatus;
  /** The last sequence number applied; events at or below it are duplicates and ignored. */
  lastSeq: number;
  /** Every applied event's seq and type, in order (what the page shows as the job's log). */
  log: { seq: number; type: string }[];
  planned: string[];
  nodes: Record<string, NodeRun>;
  outputs: Record<string, UiOutput>;
  error?: JobError;
  interruptedAt?: string | null;
  seconds?: number;
}

export const TERMINAL = new Set(["job_finished", "job_failed", "job_interrupted", "job_cancelled"]);

export function newJobRun(jobId: string): JobRun {
  return { jobId, status: "pending", lastSeq: 0, log: [], planned: [], nodes: {}, outputs: {} };
}

/** The run after one job message; a duplicate (seq already applied) changes nothing. */
export function applyJobMessage(run: JobRun, message: JobMessage): JobRun {
  const { data } = message;
  if (data.job_id !== run.jobId || data.seq <= run.lastSeq) return run;
  const next: JobRun = { ...run, lastSeq: data.seq, log: [...run.log, { seq: data.seq, type: message.type }], nodes: { ...run.nodes } };
  switch (message.type) {
    case "job_queued":
      break;
    case "job_started":
      next.status = "running";
      next.planned = message.data.nodes;
      next.nodes = {};
      break;
    case "nodes_cached":
      for (const id of message.data.nodes) next.nodes[id] = { status: "cached" };
      break;
    case "node_started":
      next.nodes[message.data.node_id] = { status: "running" };
      break;
    case "progress": {
      const id = message.data.node_id;
      next.nodes[id] = { ...next.nodes[id], status: "running", progress: { value: message.data.value, max: message.data.max } };
      break;
    }
    case "node_finished": {
      const d = message.data;
      next.nodes[d.node_id] = { status: d.cached ? "cached" : "done", seconds: d.seconds, output: (d.output as UiOutput) ?? null };
      if (d.output) next.outputs = { ...next.outputs, [d.node_id]: d.output as UiOutput };
      break;
    }
    case "job_finished":
      next.status = "finished";
      next.seconds = message.data.seconds;
      next.outputs = { ...next.outputs, ...(message.data.outputs as Record<string, UiOutput>) };
      break;
    case "job_failed": {
      next.status = "failed";
      next.error = message.data.error;
      const id = message.data.error.node_id;
      if (id) next.nodes[id] = { ...next.nodes[id], status: "failed" };
      break;
    }
    case "job_interrupted": {
      next.status = "interrupted";
      next.interruptedAt = message.data.node_id;
      const id = message.data.node_id;
      if (id) next.nodes[id] = { ...next.nodes[id], status: "stopped" };
      break;
    }
    case "job_cancelled":
      next.status = "cancelled";
      break;
  }
  return next;
}

/** Images of a node's UI output (SaveImage, PreviewImage), as view URLs. */
export function outputImages(output: UiOutput | undefined): { url: string; filename: string }[] {
  const images = (output?.images ?? []) as { url?: string; filename?: string }[];
  return images.filter((i) => i.url).map((i) => ({ url: i.url!, filename: i.filename ?? "" }));
}
