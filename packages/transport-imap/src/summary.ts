import type { Address, MessageSummary } from "@m365-mail/core";
import type {
  FetchMessageObject,
  FetchQueryObject,
  MessageAddressObject,
  MessageStructureObject,
} from "imapflow";
import { readHeaderFields } from "./header-fields.js";
import { messageIdPrefix } from "./message-id.js";

/** A message summary with the IMAP details a caller may want: UID, flags, and the source when asked for. */
export interface ImapMessageSummary extends MessageSummary {
  readonly id: string;
  readonly folder: string;
  readonly uid: number;
  /** UIDVALIDITY of the folder (a 32-bit number; imapflow's bigint is converted so summaries serialise as JSON). */
  readonly uidValidity: number;
  readonly flags: readonly string[];
  /** The RFC 5322 source, with `listMessages({ includeSource: true })`. */
  readonly source?: Uint8Array;
}

/**
 * What one FETCH asks for: flags, size, INTERNALDATE, and either the source or ENVELOPE and
 * BODYSTRUCTURE (for hasAttachments). With the source at hand the header fields are read from it
 * (see readHeaderFields) and the caller can tell attachments itself: leaving out ENVELOPE and
 * BODYSTRUCTURE keeps a bulk download faster than a plain imapflow FETCH of the same messages.
 */
export function summaryQuery(includeSource: boolean): FetchQueryObject {
  return {
    uid: true,
    envelope: !includeSource,
    flags: true,
    size: true,
    internalDate: true,
    bodyStructure: !includeSource,
    source: includeSource,
  };
}

function toAddress(entry: MessageAddressObject | undefined): Address | undefined {
  if (!entry?.address) return undefined;
  return entry.name ? { address: entry.address, name: entry.name } : { address: entry.address };
}

// A loop, not map().filter(): a listing builds these for every message of a folder.
function toAddresses(list: readonly MessageAddressObject[] | undefined): Address[] {
  const addresses: Address[] = [];
  for (const entry of list ?? []) {
    const address = toAddress(entry);
    if (address) addresses.push(address);
  }
  return addresses;
}

/** True when some leaf part is an attachment: a disposition of "attachment", or a named non-text part. */
export function hasAttachmentPart(node: MessageStructureObject | undefined): boolean | undefined {
  if (!node) return undefined;
  if (node.childNodes?.length) return node.childNodes.some((child) => hasAttachmentPart(child) === true);
  if (node.disposition?.toLowerCase() === "attachment") return true;
  const named = Boolean(node.dispositionParameters?.filename ?? node.parameters?.name);
  return named && !node.type.startsWith("text/") && node.disposition?.toLowerCase() !== "inline";
}

export type Writable<T> = { -readonly [K in keyof T]: T[K] };

/**
 * Turns the FETCH responses of one folder into summaries. The id prefix and the numeric UIDVALIDITY are
 * worked out once per folder, and fields are set one by one instead of spread (a listing builds
 * thousands of these; each spread allocates an object of its own). A missing field
 * is left out, not set to undefined, so summaries compare and serialise cleanly.
 */
export function summaryBuilder(
  folder: string,
  uidValidity: bigint,
): (message: FetchMessageObject) => ImapMessageSummary {
  const idPrefix = messageIdPrefix(folder, uidValidity);
  const uidValidityNumber = Number(uidValidity);
  return (message) => {
    const summary = {
      id: idPrefix + message.uid,
      folder,
      uid: message.uid,
      uidValidity: uidValidityNumber,
    } as Writable<ImapMessageSummary>;
    const envelope = message.envelope;
    if (envelope || !message.source) {
      if (envelope?.messageId) summary.internetMessageId = envelope.messageId;
      summary.subject = envelope?.subject ?? "";
      const from = toAddress(envelope?.from?.[0]);
      if (from) summary.from = from;
      summary.to = toAddresses(envelope?.to);
      summary.cc = toAddresses(envelope?.cc);
    } else {
      const header = readHeaderFields(message.source);
      if (header.messageId) summary.internetMessageId = header.messageId;
      summary.subject = header.subject;
      if (header.from) summary.from = header.from;
      summary.to = header.to;
      summary.cc = header.cc;
    }
    const internalDate = toDate(message.internalDate);
    if (internalDate) summary.receivedAt = internalDate;
    if (message.size !== undefined) summary.size = message.size;
    // A Set from imapflow, or HeldBatch's shared array (copied: the caller may change its summary's).
    const flags = message.flags ? Array.from(message.flags) : [];
    summary.isRead = flags.includes("\\Seen");
    summary.isFlagged = flags.includes("\\Flagged");
    const hasAttachments = hasAttachmentPart(message.bodyStructure);
    if (hasAttachments !== undefined) summary.hasAttachments = hasAttachments;
    summary.flags = flags;
    if (message.source) summary.source = message.source;
    return summary;
  };
}

export function toSummary(
  message: FetchMessageObject,
  folder: string,
  uidValidity: bigint,
): ImapMessageSummary {
  return summaryBuilder(folder, uidValidity)(message);
}

/** imapflow's INTERNALDATE (a Date, or a string on some servers) as a valid Date, else undefined. */
export function toDate(value: Date | string | undefined): Date | undefined {
  if (value === undefined) return undefined;
  const date = value instanceof Date ? value : new Date(value);
  return Number.isNaN(date.getTime()) ? undefined : date;
}
