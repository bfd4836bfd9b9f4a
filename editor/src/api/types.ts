// Names for the API types generated from docs/api/openapi.json (`npm run gen:api`); never retyped.
import type { components } from "./schema";

type S = components["schemas"];
export type NodeCatalog = S["NodeCatalog"];
export type NodeSpec = S["NodeSpec"];
export type InputSpec = S["InputSpec"];
export type OutputSpec = S["OutputSpec"];
export type PortTypeInfo = S["PortTypeInfo"];
export type GraphError = S["GraphError"];
export type JobSummary = S["JobSummary"];
export type JobDetail = S["JobDetail"];
export type JobCreated = S["JobCreated"];
export type JobPage = S["JobPage"];
export type QueueView = S["QueueView"];
export type JobError = S["JobError"];
export type ErrorBody = S["ErrorBody"];
export type UploadedImage = S["UploadedImage"];
export type ExampleGraphList = S["ExampleGraphList"];
export type ConvertedGraphBody = S["ConvertedGraphBody"];
export type ServerMessage = S["ServerMessage"];
export type JobMessage = Extract<ServerMessage, { data: { seq: number } }>;

// Graph documents: the generated GraphFile with its defaulted fields optional, as files have them.
type Entry = S["NodeEntry"];
export type NodeEntry = Pick<Entry, "type"> & Partial<Omit<Entry, "type">>;
export type EditorNode = Partial<S["EditorNode"]>;
export type EditorGroup = S["EditorGroup"];
export interface EditorLayer {
  nodes?: Record<string, EditorNode>;
  groups?: EditorGroup[];
  [key: string]: unknown;
}
export interface GraphDoc {
  version: 1;
  nodes: Record<string, NodeEntry>;
  outputs?: string[] | null;
  editor?: EditorLayer | null;
}
