import { describe, expect, it } from "vitest";
import type { JobMessage } from "../src/api/types";
import { applyJobMessage, newJobRun } from "../src/state/run";

const J = "a".repeat(32);
const m = (seq: number, type: string, data: object = {}) => ({ type, data: { job_id: J, seq, time: 0, ...data } }) as unknown as JobMessage;

describe("the run reducer", () => {
  const events = [
    m(1, "job_queued", { position: 0 }),
    m(2, "job_started", { nodes: ["a", "b"] }),
    m(3, "nodes_cached", { nodes: ["a"] }),
    m(4, "node_started", { node_id: "b", node_type: "Sample" }),
    m(5, "progress", { node_id: "b", value: 1, max: 2, preview: false }),
    m(6, "node_finished", { node_id: "b", node_type: "Sample", cached: false, seconds: 1.5, output: null }),
    m(7, "job_finished", { outputs: {}, executed: ["b"], cached: ["a"], seconds: 2 }),
  ];

  it("folds a job's events into node marks", () => {
    const run = events.reduce(applyJobMessage, newJobRun(J));
    expect(run.status).toBe("finished");
    expect(run.nodes.a.status).toBe("cached");
    expect(run.nodes.b).toEqual({ status: "done", seconds: 1.5, output: null });
    expect(run.log.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7]);
  });

  it("ignores duplicates, so replays after a reconnect change nothing", () => {
    const once = events.reduce(applyJobMessage, newJobRun(J));
    const twice = [...events, ...events].reduce(applyJobMessage, newJobRun(J));
    expect(twice).toEqual(once);
  });

  it("marks the failing node and keeps the error with its traceback", () => {
    const error = { code: "node_failed", message: "boom", node_id: "b", node_type: "Sample", exception_type: "ValueError", input: null, traceback: ["tb"], errors: [] };
    const run = [events[0], events[1], m(3, "job_failed", { error, executed: [] })].reduce(applyJobMessage, newJobRun(J));
    expect(run.status).toBe("failed");
    expect(run.nodes.b.status).toBe("failed");
    expect(run.error?.traceback).toEqual(["tb"]);
  });
});
