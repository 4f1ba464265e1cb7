import type { Address, MessageSummary } from "@m365-mail/core";
import type {
  FetchMessageObject,
  FetchQueryObject,
  MessageAddressObject,
  MessageStructureObject,
} from "imapflow";
import { formatMessageId } from "./message-id.js";

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
 * What one FETCH asks for: envelope, flags, size, INTERNALDATE, and either the source or the structure
 * (for hasAttachments). With the source at hand the caller can tell attachments itself, and leaving out
 * BODYSTRUCTURE keeps a bulk download as fast as a bare FETCH (it costs about a fifth on Dovecot).
 */
export function summaryQuery(includeSource: boolean): FetchQueryObject {
  return {
    uid: true,
    envelope: true,
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

// A loop instead of map().filter(): listing builds these for every message of a folder.
function toAddresses(list: readonly MessageAddressObject[] | undefined): Address[] {
  const out: Address[] = [];
  if (!list) return out;
  for (const entry of list) {
    const address = toAddress(entry);
    if (address) out.push(address);
  }
  return out;
}

/** True when some leaf part is an attachment: a disposition of "attachment", or a named non-text part. */
export function hasAttachmentPart(node: MessageStructureObject | undefined): boolean | undefined {
  if (!node) return undefined;
  if (node.childNodes?.length) return node.childNodes.some((child) => hasAttachmentPart(child) === true);
  if (node.disposition?.toLowerCase() === "attachment") return true;
  const named = Boolean(node.dispositionParameters?.filename ?? node.parameters?.name);
  return named && !node.type.startsWith("text/") && node.disposition?.toLowerCase() !== "inline";
}

type Writable<T> = { -readonly [K in keyof T]: T[K] };

/**
 * Turns FETCH responses of one folder into summaries. The id prefix and the numeric UIDVALIDITY are
 * worked out once per folder instead of once per message (a listing may build thousands).
 */
export function summaryBuilder(
  folder: string,
  uidValidity: bigint,
): (message: FetchMessageObject) => ImapMessageSummary {
  const idPrefix = formatMessageId({ folder, uidValidity, uid: 0 }).slice(0, -1);
  const uidValidityNumber = Number(uidValidity);
  return (message) => {
    const envelope = message.envelope;
    const id = idPrefix + message.uid;
    const internetMessageId = envelope?.messageId || undefined;
    const subject = envelope?.subject ?? "";
    const from = toAddress(envelope?.from?.[0]);
    const to = toAddresses(envelope?.to);
    const cc = toAddresses(envelope?.cc);
    const receivedAt = toDate(message.internalDate);
    const size = message.size;
    const flags = message.flags ? Array.from(message.flags) : [];
    const isRead = flags.includes("\\Seen");
    const hasAttachments = hasAttachmentPart(message.bodyStructure);
    const source = message.source;
    const uid = message.uid;
    // The two usual shapes (every field there; with the source or with hasAttachments) as one object
    // literal each, which is cheaper than adding fields one by one.
    if (internetMessageId && from && receivedAt && size !== undefined) {
      if (source && hasAttachments === undefined) {
        return {
          id,
          folder,
          uid,
          uidValidity: uidValidityNumber,
          internetMessageId,
          subject,
          from,
          to,
          cc,
          receivedAt,
          size,
          isRead,
          flags,
          source,
        };
      }
      if (!source && hasAttachments !== undefined) {
        return {
          id,
          folder,
          uid,
          uidValidity: uidValidityNumber,
          internetMessageId,
          subject,
          from,
          to,
          cc,
          receivedAt,
          size,
          isRead,
          hasAttachments,
          flags,
        };
      }
    }
    // Otherwise field by field, in the same order (JSON output keeps its shape); a missing field is
    // left out rather than set to undefined, so summaries compare and serialise cleanly.
    const summary = { id, folder, uid, uidValidity: uidValidityNumber } as Writable<ImapMessageSummary>;
    if (internetMessageId) summary.internetMessageId = internetMessageId;
    summary.subject = subject;
    if (from) summary.from = from;
    summary.to = to;
    summary.cc = cc;
    if (receivedAt) summary.receivedAt = receivedAt;
    if (size !== undefined) summary.size = size;
    summary.isRead = isRead;
    if (hasAttachments !== undefined) summary.hasAttachments = hasAttachments;
    summary.flags = flags;
    if (source) summary.source = source;
    return summary;
  };
}

/** imapflow's INTERNALDATE as a valid Date (it is usually one already), else undefined. */
function toDate(value: Date | string | undefined): Date | undefined {
  if (value === undefined) return undefined;
  const date = value instanceof Date ? value : new Date(value);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

export function toSummary(
  message: FetchMessageObject,
  folder: string,
  uidValidity: bigint,
): ImapMessageSummary {
  return summaryBuilder(folder, uidValidity)(message);
}
