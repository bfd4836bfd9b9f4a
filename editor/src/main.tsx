import "@xyflow/react/dist/style.css";
import "./styles.css";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { api } from "./api/http";
import { App } from "./App";
import { openExample, persist, restore, socket } from "./state/controller";
import { useEditor } from "./state/store";

async function start(): Promise<void> {
  const catalog = await api.catalog();
  useEditor.getState().setCatalog(catalog);
  if (!restore()) await openExample("txt2img").catch(() => undefined);
  useEditor.setState({ history: { past: [], future: [] } });
  persist();
  socket.connect();
  // Dynamic choices (model files, input images) change on disk: refresh them when the tab regains focus.
  addEventListener("focus", () => api.catalog().then((c) => useEditor.getState().setCatalog(c)).catch(() => {}));
  // For end-to-end tests and debugging: the store, read-only by convention.
  (window as unknown as { latentgraph: unknown }).latentgraph = { store: useEditor };
  createRoot(document.getElementById("root")!).render(
    <StrictMode>
      <App />
    </StrictMode>,
  );
  document.body.dataset.ready = "true";
}

void start().catch((e) => {
  document.getElementById("root")!.textContent = `The editor could not start: ${e instanceof Error ? e.message : String(e)}`;
});
