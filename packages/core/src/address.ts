import { M365MailError } from "./errors.js";
import type { Address, AddressInput, OutgoingMessage } from "./message.js";

// Deliberately simple: a local part, one "@", a dotted domain, no spaces or angle brackets.
const ADDRESS = /^[^\s@<>()",;:\\]+@[^\s@<>()",;:\\]+\.[^\s@<>()",;:\\]+$/;

export function isValidAddress(address: string): boolean {
  return ADDRESS.test(address);
}

/** Parses `"a@b.c"`, `"Name <a@b.c>"` or `{ address, name }`; throws MESSAGE_INVALID when malformed. */
export function parseAddress(input: AddressInput): Address {
  let result: Address;
  if (typeof input === "string") {
    const match = /^\s*(?:"?([^"<]*?)"?\s*)?<([^>]+)>\s*$/.exec(input);
    result = match
      ? { address: match[2]!.trim(), ...(match[1] ? { name: match[1].trim() } : {}) }
      : { address: input.trim() };
  } else {
    result = { address: input.address.trim(), ...(input.name ? { name: input.name } : {}) };
  }
  if (!isValidAddress(result.address) || /[\r\n]/.test(result.name ?? "")) {
    throw new M365MailError("MESSAGE_INVALID", `"${result.address}" is not a valid e-mail address`, {
      hint: "Use the form name@domain.tld, optionally as 'Display Name <name@domain.tld>'.",
    });
  }
  return result;
}

export function parseAddressList(input: AddressInput | AddressInput[] | undefined): Address[] {
  if (input === undefined) return [];
  return (Array.isArray(input) ? input : [input]).map(parseAddress);
}

/** `Name <a@b.c>` with the name quoted when needed; non-ASCII is left to the MIME encoder. */
export function formatAddress(address: Address): string {
  if (!address.name) return address.address;
  const name = /[",;:<>@()[\]\\]/.test(address.name)
    ? `"${address.name.replace(/(["\\])/g, "\\$1")}"`
    : address.name;
  return `${name} <${address.address}>`;
}

/**
 * Checks a message before any transport touches it, so bad input never half-sends:
 * at least one recipient, valid addresses, no CR/LF in the subject or headers.
 */
export function validateOutgoingMessage(
  message: OutgoingMessage,
  /** Drafts and replies may name no recipients yet (a reply's come from the original). */
  options: { requireRecipients?: boolean } = {},
): void {
  if (message.raw !== undefined) return;
  const recipients = [
    ...parseAddressList(message.to),
    ...parseAddressList(message.cc),
    ...parseAddressList(message.bcc),
  ];
  if (recipients.length === 0 && options.requireRecipients !== false) {
    throw new M365MailError("MESSAGE_INVALID", "the message has no recipients", {
      hint: "Set to, cc or bcc.",
    });
  }
  if (message.from !== undefined) parseAddress(message.from);
  parseAddressList(message.replyTo);
  if (message.subject && /[\r\n]/.test(message.subject)) {
    throw new M365MailError("MESSAGE_INVALID", "the subject contains a line break", {
      hint: "Remove CR and LF characters from the subject.",
    });
  }
  for (const [name, value] of Object.entries(message.headers ?? {})) {
    if (!/^[!-9;-~]+$/.test(name) || /[\r\n]/.test(value)) {
      throw new M365MailError("MESSAGE_INVALID", `header "${name.replace(/[\r\n]/g, " ")}" is malformed`, {
        hint: "Header names are printable ASCII without ':'; values must not contain CR or LF.",
      });
    }
  }
  for (const attachment of message.attachments ?? []) {
    if (!attachment.filename || /[\r\n]/.test(attachment.filename)) {
      throw new M365MailError("MESSAGE_INVALID", "an attachment has no valid filename", {
        hint: "Give every attachment a filename without line breaks.",
      });
    }
  }
}

/** A fresh RFC 5322 Message-ID on the sender's domain. */
export function generateMessageId(fromAddress: string): string {
  const domain = fromAddress.split("@")[1] ?? "m365-mail.local";
  const random = globalThis.crypto.randomUUID().replace(/-/g, "");
  return `<${random}@${domain}>`;
}
