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

const toAddresses = (list: readonly MessageAddressObject[] | undefined): Address[] =>
  (list ?? []).map(toAddress).filter((a): a is Address => a !== undefined);

/** True when some leaf part is an attachment: a disposition of "attachment", or a named non-text part. */
export function hasAttachmentPart(node: MessageStructureObject | undefined): boolean | undefined {
  if (!node) return undefined;
  if (node.childNodes?.length) return node.childNodes.some((child) => hasAttachmentPart(child) === true);
  if (node.disposition?.toLowerCase() === "attachment") return true;
  const named = Boolean(node.dispositionParameters?.filename ?? node.parameters?.name);
  return named && !node.type.startsWith("text/") && node.disposition?.toLowerCase() !== "inline";
}

export function toSummary(
  message: FetchMessageObject,
  folder: string,
  uidValidity: bigint,
): ImapMessageSummary {
  const envelope = message.envelope;
  const from = toAddress(envelope?.from?.[0]);
  const internalDate = message.internalDate === undefined ? undefined : new Date(message.internalDate);
  const hasAttachments = hasAttachmentPart(message.bodyStructure);
  const flags = [...(message.flags ?? [])];
  return {
    id: formatMessageId({ folder, uidValidity, uid: message.uid }),
    folder,
    uid: message.uid,
    uidValidity: Number(uidValidity),
    ...(envelope?.messageId ? { internetMessageId: envelope.messageId } : {}),
    subject: envelope?.subject ?? "",
    ...(from ? { from } : {}),
    to: toAddresses(envelope?.to),
    cc: toAddresses(envelope?.cc),
    ...(internalDate && !Number.isNaN(internalDate.getTime()) ? { receivedAt: internalDate } : {}),
    ...(message.size !== undefined ? { size: message.size } : {}),
    isRead: flags.includes("\\Seen"),
    ...(hasAttachments !== undefined ? { hasAttachments } : {}),
    flags,
    ...(message.source ? { source: message.source } : {}),
  };
}
