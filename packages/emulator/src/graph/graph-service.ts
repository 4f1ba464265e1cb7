import type { EmulatorContext } from "../context.js";
import type { DirectoryUser } from "../directory.js";
import { userObjectId } from "../directory-store.js";
import { EVENT_PROPERTIES, eventResource, eventsInWindow, parseCalendarWindow } from "./calendar.js";
import { type Access, authorize } from "./graph-auth.js";
import { GraphError, segmentNotFound } from "./graph-error.js";
import type { GraphRequest, GraphResponse } from "./graph-types.js";
import { sleep } from "./http-io.js";
import * as mail from "./mail/index.js";
import type { MailboxView } from "./mailbox-view.js";
import { applySelect, nextLinkWithSkip, parseSelect, parseSkip, parseTop } from "./odata.js";
import type { GraphThrottle } from "./throttle.js";
import type { UploadSessions } from "./upload-sessions.js";

export interface GraphServiceConfig {
  /** Graph origin used in every link, e.g. "https://127.0.0.1:4443". */
  origin: string;
  /** Origin of the upload host (uploadUrl), e.g. "https://localhost:4444". */
  uploadOrigin: string;
}

/** What a route handler gets: the call, the mailbox it targets and the part's services. */
export interface RouteContext {
  readonly req: GraphRequest;
  readonly mailbox: DirectoryUser;
  /** "/me" or "/users/{id}" exactly as requested; links repeat it. */
  readonly prefix: string;
  readonly service: GraphService;
}

type Handler = (route: RouteContext) => Promise<GraphResponse>;

interface Match {
  access: Access;
  /** Outlook routes count against the app + mailbox throttling limits; directory ones do not. */
  outlook: boolean;
  handler: Handler;
}

const METHOD_NOT_ALLOWED = (): GraphError =>
  new GraphError(405, "Request_BadRequest", "Specified HTTP method is not allowed for the request target.");

/**
 * Graph's routing and the checks every route shares: which mailbox, which permission, throttling.
 * Used by the HTTP listener and by `$batch` steps alike.
 */
export class GraphService {
  readonly deltaState = new mail.DeltaState();

  constructor(
    readonly ctx: EmulatorContext,
    readonly view: MailboxView,
    readonly throttle: GraphThrottle,
    readonly uploads: UploadSessions,
    readonly config: GraphServiceConfig,
  ) {}

  get origin(): string {
    return this.config.origin;
  }

  /** Runs one call; throws GraphError for every failure (the caller shapes the answer). */
  async dispatch(req: GraphRequest): Promise<GraphResponse> {
    const segments = splitPath(req.path);
    const first = segments[0]?.toLowerCase();
    let mailbox: DirectoryUser;
    let prefix: string;
    let rest: string[];
    if (first === "me") {
      mailbox = req.principal.user;
      prefix = "/me";
      rest = segments.slice(1);
    } else if (first === "users" && segments[1] !== undefined) {
      const found = this.findUser(segments[1], req.principal.claims.tid);
      rest = segments.slice(2);
      if (!found) {
        // Graph's answers differ: the directory says Request_ResourceNotFound, Outlook says ErrorInvalidUser.
        if (rest.length === 0) {
          throw new GraphError(
            404,
            "Request_ResourceNotFound",
            `Resource '${segments[1]}' does not exist or one of its queried reference-property objects are not present.`,
          );
        }
        throw new GraphError(404, "ErrorInvalidUser", `The requested user '${segments[1]}' is invalid.`);
      }
      mailbox = found;
      prefix = `/users/${encodeURIComponent(segments[1])}`;
    } else {
      throw segmentNotFound(segments[0] ?? "");
    }
    const match = this.match(req.method, rest);
    authorize(req.principal, mailbox, match.access);
    const route: RouteContext = { req, mailbox, prefix, service: this };
    if (!match.outlook) {
      if (req.delayMs) await sleep(req.delayMs);
      return match.handler(route);
    }
    const release = this.throttle.acquire(`${req.principal.appId}|${mailbox.upn.toLowerCase()}`);
    try {
      if (req.delayMs) await sleep(req.delayMs);
      return await match.handler(route);
    } finally {
      release();
    }
  }

  /** Throttle key of a call, for `$batch` scheduling; undefined when the path names no mailbox. */
  mailboxKeyOf(req: GraphRequest): string | undefined {
    const segments = splitPath(req.path);
    const first = segments[0]?.toLowerCase();
    if (first === "me") return req.principal.user.upn.toLowerCase();
    if (first === "users" && segments[1]) {
      return (
        this.findUser(segments[1], req.principal.claims.tid)?.upn.toLowerCase() ?? segments[1].toLowerCase()
      );
    }
    return undefined;
  }

  /** By UPN or object id, in the caller's tenant. */
  findUser(idOrUpn: string, tenantId: string): DirectoryUser | undefined {
    const key = idOrUpn.toLowerCase();
    const tenants = this.ctx.directory().tenants;
    const tenant = tenants.find((t) => t.id.toLowerCase() === String(tenantId).toLowerCase());
    for (const candidate of tenant ? [tenant] : tenants) {
      const user = candidate.users.find(
        (u) => u.upn.toLowerCase() === key || userObjectId(u).toLowerCase() === key,
      );
      if (user) return user;
    }
    return undefined;
  }

  private match(method: string, rest: string[]): Match {
    const a = rest[0]?.toLowerCase();
    const lowerAt = (index: number) => rest[index]?.toLowerCase();
    const n = rest.length;
    const only = (allowed: string, m: Match): Match => {
      if (method !== allowed) throw METHOD_NOT_ALLOWED();
      return m;
    };
    const read = (handler: Handler): Match => ({ access: "mail.read", outlook: true, handler });
    const write = (handler: Handler): Match => ({ access: "mail.write", outlook: true, handler });
    const send = (handler: Handler): Match => ({ access: "mail.send", outlook: true, handler });

    if (n === 0) return only("GET", { access: "profile", outlook: false, handler: profile });
    if (a === "sendmail" && n === 1) return only("POST", send(mail.sendMail));
    if ((a === "calendarview" && n === 1) || (a === "calendar" && lowerAt(1) === "calendarview" && n === 2)) {
      return only("GET", { access: "calendar.read", outlook: true, handler: calendarView });
    }
    if (a === "mailfolders") {
      if (n === 1) return only("GET", read(mail.listFolders));
      if (n === 2) return only("GET", read(mail.getFolder));
      if (n === 3 && lowerAt(2) === "childfolders") return only("GET", read(mail.listChildFolders));
      if (lowerAt(2) === "messages") {
        if (n === 3) {
          if (method === "GET") return read(mail.listMessages);
          return only("POST", write(mail.createMessage));
        }
        if (n === 4 && lowerAt(3) === "delta") return only("GET", read(mail.delta));
        return this.matchMessage(method, rest.slice(4), rest[3]!, rest[1]!);
      }
      throw segmentNotFound(rest[2] ?? rest[1]!);
    }
    if (a === "messages") {
      if (n === 1) {
        if (method === "GET") return read(mail.listMessages);
        return only("POST", write(mail.createMessage));
      }
      return this.matchMessage(method, rest.slice(2), rest[1]!, undefined);
    }
    throw segmentNotFound(rest[0]!);
  }

  /** Routes below `messages/{id}`; `folderId` is set for `mailFolders/{fid}/messages/{id}`. */
  private matchMessage(
    method: string,
    tail: string[],
    messageId: string,
    folderId: string | undefined,
  ): Match {
    const bind =
      (handler: (route: RouteContext, ids: mail.MessageIds) => Promise<GraphResponse>): Handler =>
      (route) =>
        handler(route, { messageId, folderId });
    const m = (
      access: Access,
      handler: (route: RouteContext, ids: mail.MessageIds) => Promise<GraphResponse>,
    ): Match => ({
      access,
      outlook: true,
      handler: bind(handler),
    });
    const only = (allowed: string, match: Match): Match => {
      if (method !== allowed) throw METHOD_NOT_ALLOWED();
      return match;
    };
    const t = tail.map((segment) => segment.toLowerCase());
    if (t.length === 0) {
      if (method === "GET") return m("mail.read", mail.getMessage);
      if (method === "PATCH") return m("mail.write", mail.updateMessage);
      if (method === "DELETE") return m("mail.write", mail.deleteMessage);
      throw METHOD_NOT_ALLOWED();
    }
    if (t.length === 1 && t[0] === "$value") return only("GET", m("mail.read", mail.getMessageMime));
    if (t.length === 1 && t[0] === "move") return only("POST", m("mail.write", mail.moveMessage));
    if (t.length === 1 && t[0] === "permanentdelete")
      return only("POST", m("mail.write", mail.deleteMessage));
    if (t.length === 1 && t[0] === "send") return only("POST", m("mail.send", mail.sendDraft));
    if (t[0] === "attachments") {
      if (t.length === 1) {
        if (method === "GET") return m("mail.read", mail.listAttachments);
        return only("POST", m("mail.write", mail.addAttachment));
      }
      if (t.length === 2 && t[1] === "createuploadsession")
        return only("POST", m("mail.write", mail.createUploadSession));
      const attachmentId = tail[1]!;
      const withAttachment =
        (handler: (route: RouteContext, ids: mail.MessageIds) => Promise<GraphResponse>) =>
        (route: RouteContext, ids: mail.MessageIds) =>
          handler(route, { ...ids, attachmentId });
      if (t.length === 2) {
        if (method === "GET") return m("mail.read", withAttachment(mail.getAttachment));
        if (method === "DELETE") return m("mail.write", withAttachment(mail.deleteAttachment));
        throw METHOD_NOT_ALLOWED();
      }
      if (t.length === 3 && t[2] === "$value")
        return only("GET", m("mail.read", withAttachment(mail.getAttachmentContent)));
    }
    throw segmentNotFound(tail[tail.length - 1]!);
  }
}

/** Splits a Graph path, decoding segments and OData key syntax (`mailFolders('inbox')`). */
export function splitPath(path: string): string[] {
  const out: string[] = [];
  for (const raw of path.split("/")) {
    if (raw === "") continue;
    let segment: string;
    try {
      segment = decodeURIComponent(raw);
    } catch {
      segment = raw;
    }
    const key = /^([A-Za-z]+)\('(.*)'\)$/.exec(segment);
    if (key) out.push(key[1]!, key[2]!.replace(/''/g, "'"));
    else out.push(segment);
  }
  return out;
}

async function profile(route: RouteContext): Promise<GraphResponse> {
  const user = route.mailbox;
  const [givenName, ...rest] = user.displayName.split(" ");
  return {
    status: 200,
    json: {
      "@odata.context": `${route.service.origin}/v1.0/$metadata#users/$entity`,
      businessPhones: [],
      displayName: user.displayName,
      givenName: rest.length > 0 ? (givenName ?? null) : null,
      jobTitle: null,
      mail: user.upn,
      mobilePhone: null,
      officeLocation: null,
      preferredLanguage: "en-US",
      surname: rest.length > 0 ? rest.join(" ") : null,
      userPrincipalName: user.upn,
      id: userObjectId(user),
    },
  };
}

async function calendarView(route: RouteContext): Promise<GraphResponse> {
  const { req, mailbox, service } = route;
  const window = parseCalendarWindow(req.query);
  const top = parseTop(req.query, 10);
  const skip = parseSkip(req.query);
  const select = parseSelect(req.query, EVENT_PROPERTIES, "microsoft.graph.event");
  const all = eventsInWindow(mailbox, window);
  const indexOf = new Map((mailbox.events ?? []).map((event, index) => [event, index]));
  const page = all
    .slice(skip, skip + top)
    .map((event) => applySelect(eventResource(mailbox, event, indexOf.get(event) ?? 0), select));
  // Times are always UTC here; say so when the client asked for UTC (other zones are not converted).
  const utc = /outlook\.timezone\s*=\s*"?utc"?/i.test(req.headers.prefer ?? "");
  const path = req.path.replace(/\/+$/, "");
  return {
    status: 200,
    ...(utc ? { headers: { "Preference-Applied": 'outlook.timezone="UTC"' } } : {}),
    json: {
      "@odata.context": `${service.origin}/v1.0/$metadata#users('${encodeURIComponent(mailbox.upn)}')/calendarView`,
      ...(skip + top < all.length
        ? { "@odata.nextLink": nextLinkWithSkip(service.origin, path, req.query, skip + top) }
        : {}),
      value: page,
    },
  };
}
