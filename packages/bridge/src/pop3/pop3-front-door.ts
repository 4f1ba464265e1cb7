import type { FrontDoor, FrontDoorOptions } from "../front-door.js";
import { startRelayListener } from "../relay/relay-listener.js";
import { pop3Goodbye, runPop3Session } from "./pop3-session.js";

/**
 * The POP3 front door: clients log in with USER/PASS or AUTH PLAIN over plain text, STLS or implicit
 * TLS; the bridge signs in to Microsoft 365's POP3 with XOAUTH2 and relays the session.
 * `options.upstream` is required (Exchange Online: outlook.office365.com:995, "tls").
 */
export function startPop3FrontDoor(options: FrontDoorOptions): Promise<FrontDoor> {
  return startRelayListener(options, { protocol: "pop3", goodbye: pop3Goodbye, run: runPop3Session });
}
