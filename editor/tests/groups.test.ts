import { describe, expect, it } from "vitest";
import type { GraphDoc, NodeCatalog } from "../src/api/types";
import { docToState, stateToDoc } from "../src/graph/convert";
import { groupFlowId, groupFlowNodes, groupOfFlowId, moveGroup, nodesInGroup, resizeGroup, GROUP_MIN_SIZE } from "../src/graph/groups";
import type { GraphNode, GraphState, Group } from "../src/graph/model";
import { useEditor } from "../src/state/store";
import catalogJson from "./fixtures/catalog.json";
import txt2img from "./fixtures/txt2img.json";

const catalog = catalogJson as unknown as NodeCatalog;

function node(id: string, x: number, y: number): GraphNode {
  return { id, type: "graph", position: { x, y }, measured: { width: 100, height: 50 }, data: { type: "Text", values: {}, sockets: [] } };
}

const group: Group = { id: "g", title: "G", bounding: [0, 0, 300, 200] };

describe("groups on the canvas", () => {
  it("hold the nodes whose centre lies inside them", () => {
    const nodes = [node("in", 10, 10), node("edge", 240, 160), node("out", 260, 190), node("far", 500, 500)];
    // edge's centre (290, 185) is inside; out's centre (310, 215) is not.
    expect(nodesInGroup(group, nodes)).toEqual(["in", "edge"]);
  });

  it("move with their members, and only them", () => {
    const state: GraphState = { nodes: [node("in", 10, 10), node("out", 500, 500)], edges: [], groups: [group] };
    const moved = moveGroup(state, "g", { x: 40, y: -30 }, ["in"]);
    expect(moved.groups[0].bounding).toEqual([40, -30, 300, 200]);
    expect(moved.nodes.map((n) => n.position)).toEqual([{ x: 50, y: -20 }, { x: 500, y: 500 }]);
    expect(moveGroup(state, "g", { x: 0, y: 0 }, ["in"])).toBe(state);
    expect(moveGroup(state, "nope", { x: 9, y: 9 }, ["in"])).toBe(state);
  });

  it("resize to a new box, never below the minimum size", () => {
    expect(resizeGroup([group], "g", { x: 5, y: 6, width: 400, height: 250 })[0].bounding).toEqual([5, 6, 400, 250]);
    expect(resizeGroup([group], "g", { x: 0, y: 0, width: 10, height: 10 })[0].bounding).toEqual([0, 0, GROUP_MIN_SIZE.width, GROUP_MIN_SIZE.height]);
  });

  it("are canvas nodes that cannot be selected, deleted or clash with graph node ids", () => {
    const [flow] = groupFlowNodes([group]);
    expect(flow).toMatchObject({ id: groupFlowId("g"), type: "groupBox", position: { x: 0, y: 0 }, width: 300, height: 200, selectable: false, deletable: false });
    expect(groupOfFlowId(flow.id)).toBe("g");
    expect(groupOfFlowId("sampler")).toBeNull();
  });
});

describe("group edits in the store", () => {
  function load(): void {
    useEditor.setState({ catalog, history: { past: [], future: [] } });
    const doc = structuredClone(txt2img) as unknown as GraphDoc;
    const pos = doc.editor!.nodes!.positive.position!;
    doc.editor!.groups = [{ title: "Prompts", bounding: [pos[0] - 20, pos[1] - 50, 320, 200] }];
    useEditor.setState({ ...docToState(doc, catalog) });
  }

  it("a drag moves the group and its nodes, is saved, and is one undo step", () => {
    load();
    const s = useEditor.getState();
    const before = stateToDoc(s, catalog);
    const [g] = s.groups;
    s.startGroupDrag(g.id);
    s.dragGroup(g.id, { x: g.bounding[0] + 10, y: g.bounding[1] + 5 });
    s.dragGroup(g.id, { x: g.bounding[0] + 100, y: g.bounding[1] + 40 });
    s.endGroupDrag();
    const after = stateToDoc(useEditor.getState(), catalog);
    expect(after.editor!.groups![0].bounding).toEqual([g.bounding[0] + 100, g.bounding[1] + 40, 320, 200]);
    for (const [id, entry] of Object.entries(before.editor!.nodes!)) {
      const [x, y] = entry.position!;
      const expected = id === "positive" ? [x + 100, y + 40] : [x, y];
      expect([id, after.editor!.nodes![id].position]).toEqual([id, expected]);
    }
    // A drag after the end moves nothing.
    useEditor.getState().dragGroup(g.id, { x: 0, y: 0 });
    expect(stateToDoc(useEditor.getState(), catalog)).toEqual(after);
    useEditor.getState().undo();
    expect(stateToDoc(useEditor.getState(), catalog)).toEqual(before);
    useEditor.getState().redo();
    expect(stateToDoc(useEditor.getState(), catalog)).toEqual(after);
  });

  it("a resize is saved and undone in one step", () => {
    load();
    const before = stateToDoc(useEditor.getState(), catalog);
    const [g] = useEditor.getState().groups;
    useEditor.getState().checkpoint(); // what the resizer does when a resize starts
    useEditor.getState().resizeGroupTo(g.id, { x: g.bounding[0], y: g.bounding[1], width: 500, height: 220 });
    useEditor.getState().resizeGroupTo(g.id, { x: g.bounding[0] - 30, y: g.bounding[1], width: 530, height: 260 });
    const after = stateToDoc(useEditor.getState(), catalog);
    expect(after.editor!.groups![0].bounding).toEqual([g.bounding[0] - 30, g.bounding[1], 530, 260]);
    expect(after.editor!.nodes).toEqual(before.editor!.nodes);
    useEditor.getState().undo();
    expect(stateToDoc(useEditor.getState(), catalog)).toEqual(before);
  });

  it("ignores React Flow's own changes to group nodes", () => {
    load();
    const before = stateToDoc(useEditor.getState(), catalog);
    const id = groupFlowId(useEditor.getState().groups[0].id);
    useEditor.getState().onNodesChange([
      { type: "position", id, position: { x: 999, y: 999 }, dragging: true },
      { type: "dimensions", id, dimensions: { width: 1, height: 1 }, resizing: true, setAttributes: true },
      { type: "remove", id },
    ]);
    expect(stateToDoc(useEditor.getState(), catalog)).toEqual(before);
    expect(useEditor.getState().history.past).toEqual([]);
  });
});
