// HTTP calls to the public API, with the bearer token a person gave this tab (kept in sessionStorage).
import type {
  ConvertedGraphBody,
  ErrorBody,
  ExampleGraphList,
  GraphDoc,
  GraphError,
  JobCreated,
  JobDetail,
  JobPage,
  NodeCatalog,
  QueueView,
  UploadedImage,
} from "./types";

const TOKEN_KEY = "latentgraph.token";

export function getToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

/** An API error response, with its stable code and, for invalid graphs, every GraphError. */
export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly errors: GraphError[] = [],
  ) {
    super(message);
  }
}

async function call<T>(method: string, path: string, body?: BodyInit | object, retried = false): Promise<T> {
  const headers: Record<string, string> = {};
  const token = getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  let payload: BodyInit | undefined;
  if (body instanceof FormData) payload = body;
  else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const response = await fetch(path, { method, headers, body: payload });
  if (response.status === 401 && !retried) {
    const given = window.prompt("This server needs its access token (kept for this tab only):");
    if (given) {
      sessionStorage.setItem(TOKEN_KEY, given.trim());
      return call(method, path, body, true);
    }
  }
  if (!response.ok) {
    const error = (await response.json().catch(() => null)) as ErrorBody | null;
    throw new ApiFailure(response.status, error?.error ?? "error", error?.message ?? response.statusText, error?.errors ?? []);
  }
  return (await response.json()) as T;
}

/** A view URL usable in an <img>: browsers send no header there, so the token goes in the query. */
export function withToken(url: string): string {
  const token = getToken();
  return token ? `${url}${url.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}` : url;
}

export const api = {
  catalog: () => call<NodeCatalog>("GET", "/api/v1/nodes"),
  examples: () => call<ExampleGraphList>("GET", "/api/v1/graphs"),
  example: (name: string) => call<GraphDoc>("GET", `/api/v1/graphs/${encodeURIComponent(name)}`),
  /** A workflow in another format (ComfyUI's) as our graph, positions in its editor layer. */
  convert: (document: unknown) => call<ConvertedGraphBody>("POST", "/api/v1/graphs/convert", { document }),
  submit: (graph: GraphDoc, clientId: string) => call<JobCreated>("POST", "/api/v1/jobs", { graph, client_id: clientId }),
  job: (id: string) => call<JobDetail>("GET", `/api/v1/jobs/${id}`),
  jobs: () => call<JobPage>("GET", "/api/v1/jobs?limit=50"),
  queue: () => call<QueueView>("GET", "/api/v1/queue"),
  cancel: (id: string) => call<unknown>("POST", `/api/v1/jobs/${id}/cancel`),
  front: (id: string) => call<unknown>("POST", `/api/v1/jobs/${id}/front`),
  upload: (file: File) => {
    const form = new FormData();
    form.append("image", file, file.name);
    return call<UploadedImage>("POST", "/api/v1/uploads", form);
  },
};
