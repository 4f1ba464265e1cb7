import type { FrontDoor, FrontDoorOptions } from "../front-door.js";
import { startRelayListener } from "../relay/relay-listener.js";
import { imapGoodbye, runImapSession } from "./imap-session.js";

/**
 * The IMAP front door: clients log in with LOGIN or AUTHENTICATE PLAIN over plain text, STARTTLS or
 * implicit TLS; the bridge signs in to Microsoft 365's IMAP with XOAUTH2 and relays the session.
 * `options.upstream` is required (Exchange Online: outlook.office365.com:993, "tls").
 */
export function startImapFrontDoor(options: FrontDoorOptions): Promise<FrontDoor> {
  return startRelayListener(options, { protocol: "imap", goodbye: imapGoodbye, run: runImapSession });
}
