import { describe, expect, it } from "vitest";
import { EMPTY_HISTORY, HISTORY_LIMIT, record, redo, snapshot, undo } from "../src/graph/history";
import type { GraphState } from "../src/graph/model";

function state(x: number): GraphState {
  return { nodes: [{ id: "a", type: "graph", position: { x, y: 0 }, data: { type: "Text", values: { text: String(x) }, sockets: [] } }], edges: [], groups: [] };
}

describe("undo history", () => {
  it("undoes and redoes to exact states", () => {
    let h = record(EMPTY_HISTORY, state(1));
    h = record(h, state(2));
    const [s2, h2] = undo(h, state(3))!;
    expect(s2).toEqual(snapshot(state(2)));
    const [s1, h1] = undo(h2, s2)!;
    expect(s1).toEqual(snapshot(state(1)));
    expect(undo(h1, s1)).toBeNull();
    const [r2, hr] = redo(h1, s1)!;
    expect(r2).toEqual(snapshot(state(2)));
    expect(redo(hr, r2)![0]).toEqual(snapshot(state(3)));
  });

  it("drops the redo list on a new edit", () => {
    const h = record(EMPTY_HISTORY, state(1));
    const [, after] = undo(h, state(2))!;
    expect(record(after, state(1)).future).toEqual([]);
  });

  it("snapshots are copies: later edits do not change them", () => {
    const s = state(1);
    const h = record(EMPTY_HISTORY, s);
    s.nodes[0].data.values.text = "changed";
    expect(h.past[0].nodes[0].data.values.text).toBe("1");
  });

  it("keeps at most HISTORY_LIMIT steps", () => {
    let h = EMPTY_HISTORY;
    for (let i = 0; i < HISTORY_LIMIT + 5; i++) h = record(h, state(i));
    expect(h.past.length).toBe(HISTORY_LIMIT);
    expect(h.past[0].nodes[0].position.x).toBe(5);
  });
});
