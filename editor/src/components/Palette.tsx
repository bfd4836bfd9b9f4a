// The node palette: every node type from the catalog, grouped by category, with fuzzy search.
import { useMemo, useState } from "react";
import type { NodeSpec } from "../api/types";
import { fuzzyFilter } from "../graph/search";
import { useEditor } from "../state/store";

export const DRAG_TYPE = "application/x-latentgraph-node";

export function Palette({ onPick }: { onPick(type: string): void }) {
  const catalog = useEditor((s) => s.catalog);
  const [query, setQuery] = useState("");
  const groups = useMemo(() => {
    const specs = Object.values(catalog?.nodes ?? {});
    const found = fuzzyFilter(specs, query, (s) => `${s.display_name} ${s.type} ${s.category}`);
    const byCategory = new Map<string, NodeSpec[]>();
    for (const spec of found) byCategory.set(spec.category, [...(byCategory.get(spec.category) ?? []), spec]);
    return query ? [["matches", found] as const] : [...byCategory.entries()].sort(([a], [b]) => a.localeCompare(b));
  }, [catalog, query]);
  return (
    <aside className="palette" aria-label="node palette">
      <input className="palette-search" type="search" placeholder="Search nodes…" value={query} onChange={(e) => setQuery(e.target.value)}
        onKeyDown={(e) => { if (e.key === "Enter" && groups[0]?.[1][0]) onPick(groups[0][1][0].type); }} />
      {groups.map(([category, specs]) => (
        <section key={category}>
          <h4>{category}</h4>
          {specs.map((spec) => (
            <button key={spec.type} className="palette-item" data-palette={spec.type} title={spec.description} draggable
              onDragStart={(e) => e.dataTransfer.setData(DRAG_TYPE, spec.type)} onClick={() => onPick(spec.type)}>
              {spec.display_name}
            </button>
          ))}
        </section>
      ))}
    </aside>
  );
}
