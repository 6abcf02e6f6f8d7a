// A frontend's first flow against the Deal Canvas API, typed by the client generated from the served
// schema (src/schema.d.ts, written by `npm run generate`). tsc checks it without a single cast: a field
// the schema lost or renamed fails CI. tests/test_typescript_client.py also runs it against the service.
import createClient from "openapi-fetch";
import type { components, paths } from "./schema";

export type Api = ReturnType<typeof createClient<paths>>;
type Conflict = components["schemas"]["ConflictError"];

export interface FlowResult {
  username: string;
  versionRead: number;
  versionSaved: number;
  changedSections: string[];
  staleStatus: number;
  staleCurrentVersion: number | null;
  staleDetail: string;
  ticketExpiresAt: string;
  eventsStatus: number;
  eventsContentType: string;
}

export async function login(baseUrl: string, username: string, password: string): Promise<Api> {
  const anonymous = createClient<paths>({ baseUrl });
  const { data, error, response } = await anonymous.POST("/api/auth/token", { body: { username, password } });
  if (!data) throw new Error(`login answered ${response.status}: ${JSON.stringify(error)}`);
  const access: string = data.access;
  return createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${access}` } });
}

export async function run(baseUrl: string, username: string, password: string, dealId: string): Promise<FlowResult> {
  const api = await login(baseUrl, username, password);
  const path = { deal_id: dealId };

  const canvas = await api.GET("/api/canvas/{deal_id}", { params: { path } });
  if (!canvas.data) throw new Error(`canvas GET answered ${canvas.response.status}`);
  const versionRead: number = canvas.data.version;
  const sections: string[] = Object.keys(canvas.data.sections);

  const content = `## Executive Summary\n\nSaved by the typed client (${sections.length} sections before).\n`;
  const saved = await api.POST("/api/canvas/{deal_id}/save", {
    params: { path },
    body: { content, base_version: versionRead },
  });
  if (!saved.data) throw new Error(`save answered ${saved.response.status}: ${JSON.stringify(saved.error)}`);

  // the same base version again: stale now, so 409 with the memo's current version
  const stale = await api.POST("/api/canvas/{deal_id}/save", {
    params: { path },
    body: { content: `${content}\nA second edit.\n`, base_version: versionRead },
  });
  let staleCurrentVersion: number | null = null;
  let staleDetail = "";
  if (stale.response.status === 409 && stale.error && "current_version" in stale.error) {
    const conflict: Conflict = stale.error;
    staleCurrentVersion = conflict.current_version ?? null;
    staleDetail = conflict.detail;
  } else if (stale.error && "detail" in stale.error && typeof stale.error.detail === "string") {
    staleDetail = stale.error.detail;
  }

  // a stream ticket: what a browser's native EventSource sends as ?ticket= (it cannot send headers)
  const minted = await api.POST("/api/auth/stream-ticket", { body: { deal_id: dealId } });
  if (!minted.data) throw new Error(`stream ticket answered ${minted.response.status}`);
  const ticket: string = minted.data.ticket;
  const events = await fetch(`${baseUrl}/api/canvas/${dealId}/events?ticket=${encodeURIComponent(ticket)}`);
  const eventsContentType = events.headers.get("content-type") ?? "";
  await events.body?.cancel();

  return {
    username,
    versionRead,
    versionSaved: saved.data.version,
    changedSections: saved.data.changed_sections,
    staleStatus: stale.response.status,
    staleCurrentVersion,
    staleDetail,
    ticketExpiresAt: minted.data.expires_at,
    eventsStatus: events.status,
    eventsContentType,
  };
}
