// Wires the store to the server: submitting runs, following them over the socket, persistence.
import { api, ApiFailure } from "../api/http";
import { JobSocket } from "../api/socket";
import type { GraphDoc, GraphError } from "../api/types";
import { readGraphFile } from "../graph/files";
import { useEditor } from "./store";

const CLIENT_KEY = "latentgraph.client";
const SAVED_KEY = "latentgraph.graph";
const MAX_SEED = 2 ** 53 - 1;

/** This tab's client id: the socket hears the jobs submitted with it. */
export const clientId: string =
  sessionStorage.getItem(CLIENT_KEY) ??
  (() => {
    const id = `editor-${crypto.randomUUID()}`;
    sessionStorage.setItem(CLIENT_KEY, id);
    return id;
  })();

export const socket = new JobSocket(clientId, {
  job: (message) => useEditor.getState().applyJob(message),
  preview: (frame) => {
    const s = useEditor.getState();
    if (frame.jobId !== s.shownJob) return;
    s.setPreview(frame.nodeId, URL.createObjectURL(new Blob([frame.image as BlobPart], { type: frame.mime })));
  },
  queue: (pending, running) => useEditor.setState({ queueCounts: { pending, running } }),
  connection: (connected) => useEditor.setState({ connected }),
});

/** Submit the graph; a 400 puts its errors on the nodes and inputs, and nothing runs. */
export async function runGraph(): Promise<void> {
  const s = useEditor.getState();
  if (!s.catalog || !s.nodes.length) return;
  try {
    const created = await api.submit(s.doc(), clientId);
    s.startJob(created.job_id);
    socket.follow(created.job_id);
    randomizeSeeds();
  } catch (e) {
    if (e instanceof ApiFailure && e.errors.length) {
      s.setValidation(e.errors);
      s.setNotice(`The graph is invalid: ${e.errors.length} error(s); nothing ran.`);
    } else s.setNotice(`Could not run: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** Seeds set to "random after run" get a new value once a run is submitted. */
function randomizeSeeds(): void {
  const s = useEditor.getState();
  const changed = s.nodes.map((n) => {
    if (!n.data.randomize?.length) return n;
    const values = { ...n.data.values };
    for (const input of n.data.randomize) values[input] = Math.floor(Math.random() * MAX_SEED);
    return { ...n, data: { ...n.data, values } };
  });
  useEditor.setState({ nodes: changed });
}

export async function interruptShown(): Promise<void> {
  const { shownJob } = useEditor.getState();
  if (shownJob) await api.cancel(shownJob).catch((e) => useEditor.getState().setNotice(String(e.message ?? e)));
}

/** Open a dropped or chosen file: a graph JSON or a PNG that Latentgraph wrote, or a ComfyUI
 * workflow (API or editor JSON, or a PNG ComfyUI wrote), which the server converts. */
export async function openFile(file: File): Promise<void> {
  const s = useEditor.getState();
  try {
    const content = readGraphFile(file.name, file.type, new Uint8Array(await file.arrayBuffer()));
    let doc: GraphDoc;
    let how = "";
    if (content.kind === "graph") doc = content.doc;
    else {
      const converted = await api.convert(content.document);
      doc = converted.graph as unknown as GraphDoc;
      how = ` (converted from ${converted.format})`;
    }
    s.loadDoc(doc, file.name.replace(/\.(json|png)$/i, ""));
    s.setNotice(`Opened ${file.name}${how}`);
  } catch (e) {
    const errors = e instanceof ApiFailure ? e.errors.map(describeError) : [];
    s.setNotice(`Could not open ${file.name}: ${e instanceof Error ? e.message : String(e)}`, errors);
  }
}

/** One conversion error as a line: where it is in the file (the ComfyUI node id), then why. */
export function describeError(e: GraphError): string {
  const where = e.node_id ? `node ${e.node_id}${e.input ? `, input ${e.input}` : ""}: ` : "";
  return `${where}${e.message}`;
}

export async function openExample(name: string): Promise<void> {
  const doc = await api.example(name);
  useEditor.getState().loadDoc(doc, name);
}

/** Reopen a past job's graph (positions included, as it was submitted) and show its run. */
export async function reopenJob(jobId: string): Promise<void> {
  const job = await api.job(jobId);
  const s = useEditor.getState();
  s.loadDoc(job.graph as unknown as GraphDoc, `job ${jobId.slice(0, 8)}`);
  s.startJob(jobId);
  socket.follow(jobId);
}

export function downloadDoc(): void {
  const s = useEditor.getState();
  const blob = new Blob([JSON.stringify(s.doc(), null, 2)], { type: "application/json" });
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = `${s.name || "graph"}.json`;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

/** Keep the graph in browser storage, so a reload loses nothing. */
export function persist(): void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  useEditor.subscribe((s, previous) => {
    if (!s.catalog || (s.nodes === previous.nodes && s.edges === previous.edges && s.groups === previous.groups && s.name === previous.name)) return;
    clearTimeout(timer);
    timer = setTimeout(() => save(), 150);
  });
  addEventListener("beforeunload", save);
}

function save(): void {
  const s = useEditor.getState();
  if (s.catalog) localStorage.setItem(SAVED_KEY, JSON.stringify({ name: s.name, doc: s.doc(), job: s.shownJob }));
}

/** The graph kept in browser storage, if any. */
export function restore(): boolean {
  const text = localStorage.getItem(SAVED_KEY);
  if (!text) return false;
  try {
    const saved = JSON.parse(text) as { name: string; doc: GraphDoc; job: string | null };
    const s = useEditor.getState();
    s.loadDoc(saved.doc, saved.name);
    useEditor.setState({ history: { past: [], future: [] } });
    if (saved.job) {
      s.startJob(saved.job);
      socket.follow(saved.job);
    }
    return true;
  } catch {
    return false;
  }
}
