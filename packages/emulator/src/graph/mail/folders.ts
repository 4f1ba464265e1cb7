/** `mailFolders`: list, get, child folders. */
import type { RouteContext } from "../graph-service.js";
import type { GraphResponse } from "../graph-types.js";
import type { FolderInfo } from "../mailbox-view.js";
import { applySelect, parseSelect, parseSkip, parseTop } from "../odata.js";
import { context, nextPage, pathSegment, requireFolder } from "./route.js";

const FOLDER_PROPERTIES = new Set(
  [
    "id",
    "displayName",
    "parentFolderId",
    "childFolderCount",
    "unreadItemCount",
    "totalItemCount",
    "sizeInBytes",
    "isHidden",
  ].map((name) => name.toLowerCase()),
);

function folderResource(folder: FolderInfo): Record<string, unknown> {
  return {
    id: folder.id,
    displayName: folder.displayName,
    parentFolderId: folder.parentFolderId,
    childFolderCount: folder.childFolderCount,
    unreadItemCount: folder.unreadItemCount,
    totalItemCount: folder.totalItemCount,
    isHidden: folder.isHidden,
  };
}

function folderPage(route: RouteContext, folders: FolderInfo[], entity: string): GraphResponse {
  const { req } = route;
  const top = parseTop(req.query, 10);
  const skip = parseSkip(req.query);
  const select = parseSelect(req.query, FOLDER_PROPERTIES, "microsoft.graph.mailFolder");
  const page = folders.slice(skip, skip + top).map((folder) => applySelect(folderResource(folder), select));
  return {
    status: 200,
    json: {
      "@odata.context": context(route, entity),
      ...nextPage(route, skip + top, folders.length),
      value: page,
    },
  };
}

export async function listFolders(route: RouteContext): Promise<GraphResponse> {
  const folders = await route.service.view.folders(route.mailbox.upn);
  return folderPage(
    route,
    folders.filter(
      (folder) =>
        folder.isTopLevel && (!folder.isHidden || route.req.query.get("includeHiddenFolders") === "true"),
    ),
    "mailFolders",
  );
}

export async function getFolder(route: RouteContext): Promise<GraphResponse> {
  const folderId = pathSegment(route, 1);
  const folder = await requireFolder(route, folderId);
  const select = parseSelect(route.req.query, FOLDER_PROPERTIES, "microsoft.graph.mailFolder");
  return {
    status: 200,
    json: {
      "@odata.context": context(route, "mailFolders/$entity"),
      ...applySelect(folderResource(folder), select),
    },
  };
}

export async function listChildFolders(route: RouteContext): Promise<GraphResponse> {
  const parent = await requireFolder(route, pathSegment(route, 1));
  const folders = await route.service.view.folders(route.mailbox.upn);
  return folderPage(
    route,
    folders.filter((folder) => folder.parentFolderId === parent.id),
    `mailFolders('${parent.id}')/childFolders`,
  );
}
