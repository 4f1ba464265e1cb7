/** Drafts and sending: create a draft, `sendMail`, `send` a draft, delivery to emulated mailboxes. */
import { randomBytes } from "node:crypto";
import type { AddressObject } from "mailparser";
import type { DirectoryUser } from "../../directory.js";
import { isDelegate, isSelf } from "../graph-auth.js";
import { GraphError } from "../graph-error.js";
import type { RouteContext } from "../graph-service.js";
import type { GraphResponse } from "../graph-types.js";
import {
  composeMime,
  type GraphMessageInput,
  type GraphRecipient,
  isBase64,
  parseMime,
  recipientsOf,
  stripBcc,
} from "../mime.js";
import {
  context,
  type MessageIds,
  parseJson,
  pathSegment,
  render,
  requireFolder,
  requireMessage,
} from "./route.js";

export async function createMessage(route: RouteContext): Promise<GraphResponse> {
  const input = parseJson<GraphMessageInput>(route);
  const folderSegment =
    pathSegment(route, 0).toLowerCase() === "mailfolders" ? pathSegment(route, 1) : "drafts";
  const folder = await requireFolder(route, folderSegment);
  checkSendAs(route, input.from);
  const raw = await composeMime(input, {
    mailbox: { address: route.mailbox.upn, name: route.mailbox.displayName },
    keepBcc: true,
  });
  const record = await route.service.view.append(route.mailbox.upn, folder.id, raw, {
    isDraft: true,
    isRead: true,
  });
  return {
    status: 201,
    json: {
      "@odata.context": context(route, "messages/$entity"),
      ...(await render(route, record, undefined)),
    },
  };
}

/**
 * Sending as another mailbox needs Exchange's Send As right on it (here: being one of its delegates).
 */
function checkSendAs(route: RouteContext, from: GraphRecipient | undefined): void {
  const address = from?.emailAddress?.address?.toLowerCase();
  if (!address || address === route.mailbox.upn.toLowerCase()) return;
  const owner = route.service.ctx.findUser(address);
  const principal = route.req.principal;
  if (owner && (isSelf(principal, owner) || isDelegate(principal, owner))) return;
  throw new GraphError(
    403,
    "ErrorSendAsDenied",
    "The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account., Cannot submit message.",
  );
}

export interface SendMailBody {
  message?: GraphMessageInput;
  saveToSentItems?: boolean | string;
}

export async function sendMail(route: RouteContext): Promise<GraphResponse> {
  const { req, service, mailbox } = route;
  service.ctx.counters.increment("graph.sendMail");
  const contentType = (req.headers["content-type"] ?? "application/json").toLowerCase();
  let sentCopy: Buffer;
  let recipients: string[];
  let save = true;
  if (contentType.startsWith("text/plain")) {
    const text = req.body.toString("latin1").trim();
    if (text === "" || !isBase64(text)) {
      throw new GraphError(
        400,
        "ErrorMimeContentInvalidBase64String",
        "Invalid base64 string for MIME content.",
      );
    }
    sentCopy = completeMime(Buffer.from(text.replace(/\s+/g, ""), "base64"), mailbox);
    const parsed = await parseMime(sentCopy);
    const fromAddress = addressesOf(parsed.from)[0];
    checkSendAs(route, fromAddress ? { emailAddress: { address: fromAddress } } : undefined);
    recipients = [...addressesOf(parsed.to), ...addressesOf(parsed.cc), ...addressesOf(parsed.bcc)];
  } else {
    const body = parseJson<SendMailBody>(route);
    if (!body?.message || typeof body.message !== "object") {
      throw new GraphError(400, "ErrorInvalidParameter", "The value of the parameter 'Message' is empty.");
    }
    save = !(body.saveToSentItems === false || String(body.saveToSentItems).toLowerCase() === "false");
    checkSendAs(route, body.message.from);
    recipients = recipientsOf(body.message);
    sentCopy = await composeMime(body.message, {
      mailbox: { address: mailbox.upn, name: mailbox.displayName },
      keepBcc: true,
    });
  }
  if (recipients.length === 0) throw noRecipients();
  await deliver(route, sentCopy, recipients);
  if (save) await service.view.append(mailbox.upn, "sentitems", sentCopy, { isRead: true });
  return { status: 202 };
}

export async function sendDraft(route: RouteContext, ids: MessageIds): Promise<GraphResponse> {
  const record = await requireMessage(route, ids);
  route.service.ctx.counters.increment("graph.send");
  if (!record.isDraft) {
    throw new GraphError(400, "ErrorInvalidOperation", "Only a draft message can be sent.");
  }
  const raw = await record.raw();
  const parsed = await record.parsed();
  const from = addressesOf(parsed.from)[0];
  checkSendAs(route, from ? { emailAddress: { address: from } } : undefined);
  const recipients = [...addressesOf(parsed.to), ...addressesOf(parsed.cc), ...addressesOf(parsed.bcc)];
  if (recipients.length === 0) throw noRecipients();
  await deliver(route, raw, recipients);
  // The draft itself becomes the Sent Items copy, as in Outlook.
  const view = route.service.view;
  await view.append(route.mailbox.upn, "sentitems", raw, { isRead: true });
  await view.remove(route.mailbox.upn, record.id);
  return { status: 202 };
}

function addressesOf(value: AddressObject | AddressObject[] | undefined): string[] {
  return (Array.isArray(value) ? value : value ? [value] : [])
    .flatMap((group) => group.value)
    .map((entry) => entry.address ?? "")
    .filter(Boolean);
}

/** Exchange adds From, Date and Message-ID when a submitted MIME message lacks them. */
function completeMime(raw: Buffer, mailbox: DirectoryUser): Buffer {
  const text = raw.toString("latin1");
  const end = text.search(/\r?\n\r?\n/);
  const head = end < 0 ? text : text.slice(0, end);
  const add: string[] = [];
  if (!/^from:/im.test(head)) add.push(`From: ${mailbox.displayName} <${mailbox.upn}>`);
  if (!/^date:/im.test(head)) add.push(`Date: ${new Date().toUTCString().replace("GMT", "+0000")}`);
  if (!/^message-id:/im.test(head))
    add.push(`Message-ID: <${randomBytes(16).toString("hex")}@${mailbox.upn.split("@")[1]}>`);
  return add.length === 0 ? raw : Buffer.concat([Buffer.from(`${add.join("\r\n")}\r\n`, "latin1"), raw]);
}

/**
 * Delivers into each recipient's Inbox when the recipient is a mailbox of the emulated directory;
 * other recipients are accepted and dropped (counted as `graph.dropped`), as the outside world is not
 * emulated. Recipients never see the Bcc header.
 */
async function deliver(route: RouteContext, raw: Buffer, recipients: string[]): Promise<void> {
  const { service } = route;
  const delivered = stripBcc(raw);
  const unique = [...new Set(recipients.map((address) => address.toLowerCase()))];
  if (!service.ctx.sendingQuota.admit(route.mailbox.upn, unique.length)) {
    service.ctx.counters.increment("graph.rejected.quota");
    throw submissionQuotaExceeded();
  }
  for (const address of unique) {
    const user = service.ctx.findUser(address);
    if (!user) {
      service.ctx.counters.increment("graph.dropped");
      continue;
    }
    await service.view.append(user.upn, "inbox", delivered, { isRead: false });
    service.ctx.counters.increment("graph.delivered");
  }
}

/**
 * The mailbox passed its daily recipient limit (shared with SMTP). Graph passes Exchange's response code
 * through; the HTTP status is not documented — 429 is what Microsoft's own Graph client code expects.
 * No Retry-After: the limit clears as the rolling 24 hours move on, not after a set time.
 */
function submissionQuotaExceeded(): GraphError {
  return new GraphError(
    429,
    "ErrorSubmissionQuotaExceeded",
    "Cannot send mail: the sender's submission quota was exceeded. Try again later.",
  );
}

function noRecipients(): GraphError {
  return new GraphError(
    400,
    "ErrorInvalidRecipients",
    "At least one recipient is required, but none were found.",
  );
}
