// Search at a point of the canvas (double-click, or a link dropped on empty canvas, filtered by type).
import { useState } from "react";
import { fuzzyFilter } from "../graph/search";
import { useEditor } from "../state/store";

export interface SearchRequest {
  screen: { x: number; y: number };
  flow: { x: number; y: number };
  /** Only these node types (those that accept the dropped link's type). */
  only?: string[];
  /** The link being dropped, connected to the chosen node. */
  from?: { node: string; handle: string; type: string; output: boolean };
}

export function SearchPopup({ request, onPick, onClose }: { request: SearchRequest; onPick(type: string): void; onClose(): void }) {
  const catalog = useEditor((s) => s.catalog);
  const [query, setQuery] = useState("");
  const specs = Object.values(catalog?.nodes ?? {}).filter((s) => !request.only || request.only.includes(s.type));
  const found = fuzzyFilter(specs, query, (s) => `${s.display_name} ${s.type}`).slice(0, 12);
  return (
    <div className="search-popup" style={{ left: request.screen.x, top: request.screen.y }} role="dialog" aria-label="add node">
      <input autoFocus placeholder={request.from ? `Nodes for ${request.from.type}…` : "Add node…"} value={query}
        onChange={(e) => setQuery(e.target.value)}
        onKeyDown={(e) => {
          if (e.key === "Enter" && found[0]) onPick(found[0].type);
          if (e.key === "Escape") onClose();
        }} />
      <ul>
        {found.map((s) => (
          <li key={s.type}><button data-search-result={s.type} onClick={() => onPick(s.type)}>{s.display_name} <small>{s.category}</small></button></li>
        ))}
      </ul>
    </div>
  );
}
