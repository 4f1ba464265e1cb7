import { randomBytes } from "node:crypto";
import type { DirectoryUser } from "../directory.js";
import { userObjectId } from "../directory-store.js";
import { GraphError } from "./graph-error.js";
import type { GraphResponse } from "./graph-types.js";

/** Outlook refuses upload chunks of 4 MB and more; clients must split below that. */
export const MAX_UPLOAD_CHUNK_BYTES = 4 * 1024 * 1024;
/** How long an upload URL stays valid; Outlook keeps the first expirationDateTime for the whole session. */
const SESSION_LIFETIME_MS = 15 * 60 * 1000;

export interface UploadSession {
  readonly token: string;
  readonly sessionId: string;
  readonly owner: DirectoryUser;
  readonly tenantId: string;
  readonly messageId: string;
  readonly name: string;
  readonly size: number;
  readonly contentType: string;
  readonly isInline: boolean;
  readonly contentId?: string;
  readonly uploadUrl: string;
  readonly expiresAt: Date;
  chunks: Buffer[];
  received: number;
}

export interface NewUploadSession {
  owner: DirectoryUser;
  tenantId: string;
  messageId: string;
  name: string;
  size: number;
  contentType: string;
  isInline: boolean;
  contentId?: string;
}

/** Outlook's answers on the upload host use its v2.0 REST shapes (capitalised, own @odata.context). */
function outlookError(status: number, code: string, message: string): GraphError {
  return new GraphError(status, code, message);
}

/**
 * Large-attachment upload sessions: `createUploadSession` makes one, the upload host (a second
 * listener, like Microsoft's outlook.office.com) takes the byte ranges with no Authorization header:
 * the opaque token in the URL is the credential.
 * Source: https://learn.microsoft.com/en-us/graph/outlook-large-attachments
 */
export class UploadSessions {
  private readonly sessions = new Map<string, UploadSession>();

  constructor(private readonly uploadOrigin: () => string) {}

  create(input: NewUploadSession): UploadSession {
    this.prune();
    const token = randomBytes(32).toString("base64url");
    const sessionId = `AAMkAGS${randomBytes(12).toString("base64url")}=`;
    const userKey = `${userObjectId(input.owner)}@${input.tenantId}`;
    const uploadUrl =
      `${this.uploadOrigin()}/api/v2.0/Users('${encodeURIComponent(userKey)}')/Messages('${encodeURIComponent(input.messageId)}')` +
      `/AttachmentSessions('${encodeURIComponent(sessionId)}')?authtoken=${token}`;
    const session: UploadSession = {
      ...input,
      token,
      sessionId,
      uploadUrl,
      expiresAt: new Date(Date.now() + SESSION_LIFETIME_MS),
      chunks: [],
      received: 0,
    };
    this.sessions.set(token, session);
    return session;
  }

  /** The session an upload URL names, checked like Outlook checks its pre-authenticated URL. */
  find(url: URL, authorization: string | undefined): UploadSession {
    if (authorization) {
      // What Outlook answers when a client sends its Graph token along (msgraph-sdk-java#409).
      throw outlookError(
        401,
        "InvalidAudienceForResource",
        `The audience claim value is invalid for current resource. Audience claim is 'https://graph.microsoft.com', request url is '${url.origin}${url.pathname}'.`,
      );
    }
    const token = url.searchParams.get("authtoken") ?? "";
    const session = this.sessions.get(token);
    if (
      !session ||
      !decodeURIComponent(url.pathname).includes(`AttachmentSessions('${session.sessionId}')`)
    ) {
      throw outlookError(404, "ErrorItemNotFound", "The specified object was not found in the store.");
    }
    if (session.expiresAt.getTime() < Date.now()) {
      this.sessions.delete(token);
      throw outlookError(
        401,
        "InvalidAuthenticationToken",
        "Lifetime validation failed, the token is expired.",
      );
    }
    return session;
  }

  /**
   * One `PUT` with `Content-Range: bytes a-b/total`. Ranges come in order (a gap answers 416; a range
   * sent again overwrites); the answer is 200 with
   * the next expected start, or `complete` when the last byte arrived (the caller attaches the file).
   */
  put(
    session: UploadSession,
    contentRange: string | undefined,
    body: Buffer,
  ): { complete: boolean; response: GraphResponse } {
    const match = /^bytes\s+(\d+)-(\d+)\/(\d+)$/i.exec((contentRange ?? "").trim());
    if (!match) {
      throw outlookError(
        400,
        "ErrorInvalidRequest",
        "The Content-Range header is missing or malformed; expected 'bytes {start}-{end}/{total}'.",
      );
    }
    const start = Number(match[1]);
    const end = Number(match[2]);
    const total = Number(match[3]);
    if (total !== session.size) {
      throw outlookError(
        400,
        "ErrorInvalidRequest",
        `The total size in Content-Range (${total}) does not match the session's size (${session.size}).`,
      );
    }
    if (end < start || end >= total || body.length !== end - start + 1) {
      throw outlookError(
        400,
        "ErrorInvalidRequest",
        "The Content-Range does not match the number of bytes in the request body.",
      );
    }
    if (start > session.received) {
      throw outlookError(
        416,
        "ErrorInvalidRange",
        `The range ${start}-${end} is not the next expected range; upload from byte ${session.received}.`,
      );
    }
    if (start < session.received) {
      // A range sent again (a client retrying after a lost answer) overwrites from its start.
      const kept = Buffer.concat(session.chunks).subarray(0, start);
      session.chunks = [kept];
    }
    session.chunks.push(body);
    session.received = end + 1;
    if (session.received < session.size) {
      return {
        complete: false,
        response: {
          status: 200,
          json: {
            "@odata.context": `${this.uploadOrigin()}/api/v2.0/$metadata#Users('${encodeURIComponent(`${userObjectId(session.owner)}@${session.tenantId}`)}')/Messages('${encodeURIComponent(session.messageId)}')/AttachmentSessions/$entity`,
            ExpirationDateTime: session.expiresAt.toISOString(),
            nextExpectedRanges: [String(session.received)],
          },
          contentType:
            "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8",
        },
      };
    }
    this.sessions.delete(session.token);
    return { complete: true, response: { status: 201 } };
  }

  cancel(session: UploadSession): void {
    this.sessions.delete(session.token);
  }

  content(session: UploadSession): Buffer {
    return Buffer.concat(session.chunks);
  }

  /** Location of the finished attachment, on the upload host like Outlook's. */
  attachmentLocation(session: UploadSession, attachmentId: string): string {
    const userKey = `${userObjectId(session.owner)}@${session.tenantId}`;
    return `${this.uploadOrigin()}/api/v2.0/Users('${encodeURIComponent(userKey)}')/Messages('${encodeURIComponent(session.messageId)}')/Attachments('${encodeURIComponent(attachmentId)}')`;
  }

  private prune(): void {
    const now = Date.now();
    for (const [token, session] of this.sessions)
      if (session.expiresAt.getTime() < now) this.sessions.delete(token);
  }
}
