import { M365MailError, type Transport } from "@m365-mail/core";
import { usageError } from "./exit-codes.js";
import type { Via } from "./session.js";

const IMAP_ID = /^.+:\d+:\d+$/;

/**
 * Ids differ per protocol. An IMAP id (`INBOX:1700000000:42`) given to Graph would come back as a
 * puzzling 400 from Microsoft: say which flag to add instead.
 */
export function checkMessageId(id: string, via: Via, command: string): void {
  if (via !== "imap" && IMAP_ID.test(id)) {
    throw usageError(
      `"${id}" is an IMAP message id, but ${command} is working over ${via}`,
      `Add --via imap (ids differ per protocol: use the id \`m365-mail list\` printed with the same --via).`,
    );
  }
  if (via === "imap" && !IMAP_ID.test(id)) {
    throw usageError(
      `"${id}" is not an IMAP message id (folder:uidvalidity:uid)`,
      "Drop --via imap for a Graph id, or list with `m365-mail list --via imap` to get IMAP ids.",
    );
  }
}

type Method = Exclude<
  {
    [K in keyof Transport]-?: NonNullable<Transport[K]> extends (...args: never[]) => unknown ? K : never;
  }[keyof Transport],
  "verify" | "close"
>;

/** The transport's method, or a NOT_SUPPORTED error that names the --via values that have it. */
export function operation<M extends Method>(
  transport: Transport,
  method: M,
  what: string,
  alternatives: string,
): NonNullable<Transport[M]> {
  const fn = transport[method];
  if (typeof fn !== "function") {
    throw new M365MailError("NOT_SUPPORTED", `${what} is not possible over ${transport.name}`, {
      source: "cli",
      hint: `Use ${alternatives}.`,
    });
  }
  return (fn as (...args: unknown[]) => unknown).bind(transport) as NonNullable<Transport[M]>;
}
