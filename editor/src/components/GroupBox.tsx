// A group on the canvas: dragged by its title bar (the nodes inside move with it), resized by its
// edges and corners (React Flow's NodeResizer), renamed and removed in place.
import { NodeResizer, type NodeProps } from "@xyflow/react";
import { memo } from "react";
import { GROUP_MIN_SIZE, type GroupFlowNode } from "../graph/groups";
import { useEditor } from "../state/store";

export const GroupBox = memo(function GroupBox({ data }: NodeProps<GroupFlowNode>) {
  const { group } = data;
  const updateGroup = useEditor((s) => s.updateGroup);
  const removeGroup = useEditor((s) => s.removeGroup);
  return (
    <div className="group-box" data-group={group.title}>
      <NodeResizer
        minWidth={GROUP_MIN_SIZE.width}
        minHeight={GROUP_MIN_SIZE.height}
        color="#6c7a89"
        handleClassName="group-resize"
        lineClassName="group-edge"
        onResizeStart={() => useEditor.getState().checkpoint()}
        onResize={(_, box) => useEditor.getState().resizeGroupTo(group.id, box)}
      />
      <div className="group-header">
        <span className="group-grip" title="drag to move the group and the nodes inside it">⠿</span>
        <input className="group-title nodrag" aria-label="group title" value={group.title}
          onChange={(e) => updateGroup(group.id, { title: e.target.value })} />
        <button className="group-remove nodrag" title="remove group (its nodes stay)" onClick={() => removeGroup(group.id)}>×</button>
      </div>
    </div>
  );
});
