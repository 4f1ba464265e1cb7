import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { ClientSession } from "./client-session.js";

/**
 * After sign-in: copies bytes both ways until either side closes, with backpressure (`pipe` pauses the
 * faster side). Nothing is parsed, so every server extension (IDLE, MOVE, CONDSTORE, COMPRESS …) works.
 * `toUpstream` is what the client sent ahead of its login's answer (pipelined commands); `toClient` is
 * what the server sent beyond the last line of the sign-in. When the server ends the session (a `BYE`
 * for an expired token), the client gets every byte of it and then the close. `watchUpstream` sees each
 * chunk from the server too (IMAP watches for throttling), without changing or holding it. `through`
 * puts a stream in each direction (IMAP's Sent Items filter), for accounts that ask for one.
 */
export function relayBytes(
  session: ClientSession,
  upstream: Socket,
  toUpstream: Buffer,
  toClient: Buffer,
  watchUpstream?: (chunk: Buffer) => void,
  through?: { readonly fromClient: Duplex; readonly fromUpstream: Duplex },
): Promise<void> {
  session.stage = "relay";
  session.attachUpstream(upstream);
  const client = session.socket;
  if (watchUpstream) {
    watchUpstream(toClient);
    upstream.on("data", watchUpstream);
  }
  const toClientSide = through?.fromUpstream ?? client;
  const toUpstreamSide = through?.fromClient ?? upstream;
  if (toClient.length > 0) toClientSide.write(toClient);
  if (toUpstream.length > 0) toUpstreamSide.write(toUpstream);
  if (through) {
    client.pipe(through.fromClient).pipe(upstream);
    upstream.pipe(through.fromUpstream).pipe(client);
  } else {
    client.pipe(upstream);
    upstream.pipe(client);
  }
  upstream.on("error", () => {});
  // pipe() ends the other side on a clean end; an error or reset must end it too.
  upstream.once("close", () => session.end());
  client.once("close", () => upstream.destroy());
  return Promise.all([
    session.closed,
    new Promise<void>((resolve) =>
      upstream.destroyed ? resolve() : upstream.once("close", () => resolve()),
    ),
  ]).then(() => undefined);
}
