import { M365MailError, type MailFolder, type SpecialFolder } from "@m365-mail/core";
import type { GraphContext } from "./graph-context.js";
import { SOURCE } from "./graph-errors.js";
import type { BatchStep } from "./graph-http.js";
import { type GraphMailFolder, toFolder } from "./graph-message.js";
import { OPERATIONS } from "./operations.js";

/** Our special-use names → Graph's well-known folder names. */
export const WELL_KNOWN_FOLDERS: Readonly<Record<SpecialFolder, string>> = {
  inbox: "inbox",
  sent: "sentitems",
  drafts: "drafts",
  trash: "deleteditems",
  junk: "junkemail",
  archive: "archive",
  outbox: "outbox",
};

// https://learn.microsoft.com/en-us/graph/api/resources/mailfolder (well-known folder names)
const GRAPH_WELL_KNOWN = new Set([
  ...Object.values(WELL_KNOWN_FOLDERS),
  "msgfolderroot",
  "clutter",
  "conflicts",
  "conversationhistory",
  "localfailures",
  "recoverableitemsdeletions",
  "scheduled",
  "searchfolders",
  "serverfailures",
  "syncissues",
]);

const FOLDER_FIELDS = "id,displayName,parentFolderId,childFolderCount,totalItemCount,unreadItemCount";
const CACHE_MS = 60_000;

interface FolderPage {
  value?: GraphMailFolder[];
  "@odata.nextLink"?: string;
}

/**
 * Every folder with its full path ("Inbox/Receipts"). One `$batch` asks for the well-known folders
 * (to mark Inbox, Sent Items, …) and the top level together; each deeper level is one more batch.
 */
export async function listFolders(ctx: GraphContext, signal?: AbortSignal): Promise<MailFolder[]> {
  const op = OPERATIONS.listFolders;
  const mb = ctx.mailboxPath;
  const special = Object.entries(WELL_KNOWN_FOLDERS) as [SpecialFolder, string][];
  const steps: BatchStep[] = [
    { method: "GET", url: `${mb}/mailFolders?$top=100&$select=${FOLDER_FIELDS}` },
    ...special.map(([, name]): BatchStep => ({ method: "GET", url: `${mb}/mailFolders/${name}?$select=id` })),
  ];
  const [top, ...wellKnown] = await ctx.http.batch<FolderPage & GraphMailFolder>(op, steps, signal);
  const specialById = new Map<string, SpecialFolder>();
  wellKnown.forEach((outcome, i) => {
    // A mailbox without an archive answers 404 for it: that is not an error.
    if (outcome?.ok && outcome.body.id) specialById.set(outcome.body.id, special[i]![0]);
  });
  if (!top?.ok)
    throw (
      top?.error ??
      new M365MailError("INVALID_RESPONSE", "listing folders returned nothing", { source: SOURCE })
    );

  const result: MailFolder[] = [];
  let level: { folder: GraphMailFolder; path: string }[] = [];
  const addPage = async (page: FolderPage, parentPath: string) => {
    let current: FolderPage | undefined = page;
    while (current) {
      for (const folder of current.value ?? []) {
        const path = parentPath ? `${parentPath}/${folder.displayName ?? ""}` : (folder.displayName ?? "");
        result.push(toFolder(folder, path, specialById.get(folder.id)));
        level.push({ folder, path });
      }
      const next: string | undefined = current["@odata.nextLink"];
      current = next ? (await ctx.http.request<FolderPage>(op, "GET", next, { signal })).data : undefined;
    }
  };
  await addPage(top.body, "");

  // Breadth first: one batch per level of child folders.
  for (let depth = 0; depth < 32 && level.length > 0; depth++) {
    const parents = level.filter((l) => (l.folder.childFolderCount ?? 0) > 0);
    level = [];
    if (parents.length === 0) break;
    const pages = await ctx.http.batch<FolderPage>(
      op,
      parents.map((p) => ({
        method: "GET",
        url: `${mb}/mailFolders/${encodeURIComponent(p.folder.id)}/childFolders?$top=100&$select=${FOLDER_FIELDS}`,
      })),
      signal,
    );
    for (const [i, outcome] of pages.entries()) {
      if (!outcome.ok) throw outcome.error;
      await addPage(outcome.body, parents[i]!.path);
    }
  }
  result.sort((a, b) => a.path.localeCompare(b.path));
  ctx.folderCache = { folders: result, at: Date.now() };
  return result;
}

/**
 * A folder id, a path ("Inbox/Receipts"), a display name, or a well-known name ("inbox", "sent",
 * "sentitems") → the URL segment Graph takes.
 */
export async function resolveFolder(
  ctx: GraphContext,
  folder: string | undefined,
  signal?: AbortSignal,
): Promise<string> {
  if (!folder) return "inbox";
  const key = folder.toLowerCase();
  const special = WELL_KNOWN_FOLDERS[key as SpecialFolder];
  if (special) return special;
  if (GRAPH_WELL_KNOWN.has(key)) return key;

  for (let pass = 0; pass < 2; pass++) {
    const fresh = ctx.folderCache && Date.now() - ctx.folderCache.at < CACHE_MS && pass === 0;
    const folders = fresh ? ctx.folderCache!.folders : await listFolders(ctx, signal);
    const found =
      folders.find((f) => f.id === folder) ??
      folders.find((f) => f.path.toLowerCase() === key) ??
      folders.find((f) => f.name.toLowerCase() === key);
    if (found) return encodeURIComponent(found.id);
    if (!fresh) {
      // Graph ids are long opaque strings; anything else that matched nothing is a wrong name.
      if (/^[A-Za-z0-9+/=_-]{40,}$/.test(folder)) return encodeURIComponent(folder);
      const known = folders
        .slice(0, 12)
        .map((f) => f.path)
        .join(", ");
      throw new M365MailError("NOT_FOUND", `no folder "${folder}" in ${ctx.mailbox}`, {
        source: SOURCE,
        hint: `Use a folder id, a path such as "Inbox/Receipts", or a well-known name (inbox, sent, drafts, trash, junk, archive). Folders: ${known}`,
      });
    }
  }
  throw new M365MailError("NOT_FOUND", `no folder "${folder}"`, { source: SOURCE });
}
