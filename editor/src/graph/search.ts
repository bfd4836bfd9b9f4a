// Fuzzy matching for the node palette and search popup.

/** A score for `query` against `text` (higher is better), or null when the letters do not appear in order. */
export function fuzzyScore(query: string, text: string): number | null {
  const q = query.toLowerCase().replace(/\s+/g, "");
  const t = text.toLowerCase();
  if (!q) return 0;
  if (t.includes(q)) return 1000 - t.indexOf(q) * 2 - t.length;
  let score = 0;
  let at = 0;
  let previous = -2;
  for (const ch of q) {
    const found = t.indexOf(ch, at);
    if (found < 0) return null;
    score += found === previous + 1 ? 10 : 1; // consecutive letters count more
    if (found === 0 || /[^a-z0-9]/.test(t[found - 1] ?? "")) score += 5; // word starts too
    previous = found;
    at = found + 1;
  }
  return score - t.length / 10;
}

/** The items that match `query`, best first. */
export function fuzzyFilter<T>(items: T[], query: string, text: (item: T) => string): T[] {
  const scored: [T, number][] = [];
  for (const item of items) {
    const score = fuzzyScore(query, text(item));
    if (score !== null) scored.push([item, score]);
  }
  return scored.sort((a, b) => b[1] - a[1]).map(([item]) => item);
}
