/** What every mail handler shares: the route's ids, path segments, JSON bodies, lookups and rendering. */
import { badRequest, notFound } from "../graph-error.js";
import type { RouteContext } from "../graph-service.js";
import type { FolderInfo, MessageRecord } from "../mailbox-view.js";
import { messageResource, preferredBodyType } from "../message-resource.js";
import { applySelect, nextLinkWithSkip } from "../odata.js";

export interface MessageIds {
  messageId: string;
  /** Set when the route was `mailFolders/{folderId}/messages/{messageId}`. */
  folderId?: string;
  attachmentId?: string;
}

export function context(route: RouteContext, entity: string): string {
  return `${route.service.origin}/v1.0/$metadata#users('${encodeURIComponent(route.mailbox.upn)}')/${entity}`;
}

/** Graph's answer for a JSON body it cannot read. */
export function parseJson<T>(route: RouteContext): T {
  const text = route.req.body.toString("utf8");
  if (text.trim() === "") throw badRequest("Empty Payload. JSON content expected.");
  try {
    return JSON.parse(text) as T;
  } catch {
    throw badRequest(
      "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.",
    );
  }
}

export async function requireFolder(route: RouteContext, idOrName: string): Promise<FolderInfo> {
  const folder = await route.service.view.folder(route.mailbox.upn, idOrName);
  if (!folder) throw notFound();
  return folder;
}

/** Segment `index` after the mailbox prefix (`/me` or `/users/{id}`), decoded. */
export function pathSegment(route: RouteContext, index: number): string {
  const segments = route.req.path
    .split("/")
    .filter(Boolean)
    .flatMap((raw) => {
      let segment = raw;
      try {
        segment = decodeURIComponent(raw);
      } catch {}
      const key = /^([A-Za-z]+)\('(.*)'\)$/.exec(segment);
      return key ? [key[1]!, key[2]!.replace(/''/g, "'")] : [segment];
    });
  const offset = segments[0]?.toLowerCase() === "me" ? 1 : 2;
  return segments[offset + index] ?? "";
}

export function expandsAttachments(route: RouteContext): boolean {
  const expand = route.req.query.get("$expand");
  if (expand === null || expand.trim() === "") return false;
  const names = expand.split(",").map((name) => name.trim().toLowerCase());
  for (const name of names) {
    if (name !== "attachments") {
      throw badRequest(
        `Parsing OData Select and Expand failed: Could not find a property named '${name}' on type 'microsoft.graph.message'.`,
      );
    }
  }
  return true;
}

export async function render(
  route: RouteContext,
  record: MessageRecord,
  select: string[] | undefined,
): Promise<Record<string, unknown>> {
  const preferBody = preferredBodyType(route.req.headers.prefer);
  const withHeaders = select?.some((name) => name.toLowerCase() === "internetmessageheaders") ?? false;
  const resource = await messageResource(record, {
    ...(preferBody ? { preferBody } : {}),
    expandAttachments: expandsAttachments(route),
    withHeaders,
  });
  const selected = applySelect(
    resource,
    select ? [...select, ...(resource.attachments ? ["attachments"] : [])] : undefined,
  );
  return selected;
}

export function bodyPreferenceHeaders(route: RouteContext): Record<string, string> {
  const prefer = preferredBodyType(route.req.headers.prefer);
  return prefer ? { "Preference-Applied": `outlook.body-content-type="${prefer}"` } : {};
}

export async function requireMessage(route: RouteContext, ids: MessageIds): Promise<MessageRecord> {
  const record = await route.service.view.message(route.mailbox.upn, ids.messageId);
  if (!record) throw notFound();
  if (ids.folderId !== undefined) {
    const folder = await route.service.view.folder(route.mailbox.upn, ids.folderId);
    if (!folder || folder.id !== record.folderId) throw notFound();
  }
  return record;
}

/** The `@odata.nextLink` of a `$skip` page when `next` items come before the end, else nothing. */
export function nextPage(route: RouteContext, next: number, total: number): { "@odata.nextLink"?: string } {
  if (next >= total) return {};
  const { req, service } = route;
  return {
    "@odata.nextLink": nextLinkWithSkip(service.origin, req.path.replace(/\/+$/, ""), req.query, next),
  };
}
