/**
 * The Exchange-shaped front of Dovecot's IMAP and POP3: a TLS listener that relays each session to
 * Dovecot's own implicit-TLS port and enforces what Exchange Online does and Dovecot does not:
 * - POP3 takes `AUTH XOAUTH2` only in two steps; the one-line form `AUTH XOAUTH2 <b64>` gets
 *   `-ERR Protocol error` (m365-facts.md, "SASL strings": POP3 `AUTH XOAUTH2` then the string on the next line).
 * - A session ends when the token it signed in with expires — that session only, with
 *   `* BYE Session invalidated - AccessTokenExpired` over IMAP (m365-facts.md, "Exchange Online protocol
 *   behaviour"). Dovecot cannot tell which session used which token; the front sees the token in AUTH.
 * - IMAP throttling, when a `throttled` fault is armed (target `imap`): Exchange's
 *   `<tag> NO Request is throttled. Suggested Backoff Time: <n> milliseconds` for the sign-in (`path`
 *   "login") or for every command of the session (`path` "command"), and for the user's new sign-ins until
 *   the back-off has passed (bridge-and-federation-facts.md: the reference proxy's theme 15, #191, and
 *   row 6 of the symptoms table: imapsync #198/#272, imap_tools #135 — back-offs of ~90 s to ~300 s).
 * Before sign-in the front reads lines; after it, client bytes pass straight through (unless the session
 * is throttled), and server bytes are only scanned for IMAP response ends (literals skipped), so that a
 * BYE never lands inside a response.
 */
import type { AddressInfo, Socket } from "node:net";
import { createServer, type TLSSocket, connect as tlsConnect } from "node:tls";
import { type Logger, M365MailError, readJwtClaims } from "@m365-mail/core";
import type { FaultRegistry, TlsMaterial } from "../context.js";
import type { DovecotProtocol } from "./dovecot-config.js";

export interface SessionFrontOptions {
  protocol: DovecotProtocol;
  host: string;
  /** @default 0 — a free port */
  port?: number;
  tls: TlsMaterial;
  /** Dovecot's implicit-TLS port for this protocol. */
  backendPort: number;
  log: Logger;
  /**
   * Counts events: `dovecot.kick.token-expired` (a session ended at its token's expiry),
   * `pop3.auth.one-line-refused`, `imap.authenticate` (sign-ins that reached the front),
   * `imap.throttled.login` and `imap.throttled.command` (answered with Exchange's throttling text).
   */
  count(name: string): void;
  /** Armed faults; the IMAP front takes `throttled` ones (target "imap", path "login" or "command"). */
  faults?: Pick<FaultRegistry, "take">;
}

export interface SessionFront {
  readonly port: number;
  /** Sessions open right now. */
  sessions(): number;
  close(): Promise<void>;
}

export const TOKEN_EXPIRED_BYE = "* BYE Session invalidated - AccessTokenExpired\r\n";
export const POP3_PROTOCOL_ERROR = "-ERR Protocol error\r\n";
/** Exchange Online's answer to a throttled IMAP command or sign-in (back-off in milliseconds). */
export const throttledAnswer = (tag: string, backoffMs: number) =>
  `${tag} NO Request is throttled. Suggested Backoff Time: ${Math.max(1, Math.round(backoffMs))} milliseconds\r\n`;
/** @default back-off of a `throttled` fault without `retryAfterSeconds` (Exchange's run from ~90 s to ~300 s). */
const DEFAULT_THROTTLE_SECONDS = 90;

const MAX_PRE_AUTH_LINE = 64 * 1024;

/** The bearer token in a base64 XOAUTH2 or OAUTHBEARER string, if any. */
function bearerIn(base64: string): string | undefined {
  const text = Buffer.from(base64.trim(), "base64").toString("utf8");
  return /auth=Bearer ([^\x01]+)/.exec(text)?.[1];
}

/**
 * Exchange puts no `[CAPABILITY …]` code in its greeting or in its answer to AUTHENTICATE
 * (`a OK AUTHENTICATE completed.`): clients must ask with CAPABILITY. Dovecot does put one in both.
 */
function asExchangeAnswers(chunk: Buffer): Buffer {
  const text = chunk.toString("latin1");
  if (!text.includes("[CAPABILITY ") && !text.includes(" OK Logged in")) return chunk;
  return Buffer.from(
    text
      .replace(/^\* OK \[CAPABILITY [^\]]*\] /gm, "* OK ")
      .replace(/^(\S+) OK (?:\[CAPABILITY [^\]]*\] )?Logged in\b[^\r\n]*/gm, "$1 OK AUTHENTICATE completed."),
    "latin1",
  );
}

/**
 * Finds where IMAP responses end in the server's byte stream: at a CRLF that is not followed by a
 * literal (`{n}` at the line's end announces n raw bytes that belong to the same response).
 */
class ImapResponseScanner {
  private literal = 0;
  private partial: Buffer[] = [];
  /** True when everything fed so far ends exactly at the end of a response. */
  atEnd = true;

  /** Offsets in `chunk` just after each response that ends in it; `onLine` gets each line's text. */
  feed(chunk: Buffer, onLine?: (line: string) => void): number[] {
    const ends: number[] = [];
    let i = 0;
    while (i < chunk.length) {
      if (this.literal > 0) {
        const take = Math.min(this.literal, chunk.length - i);
        this.literal -= take;
        i += take;
        continue;
      }
      const newline = chunk.indexOf(0x0a, i);
      if (newline < 0) {
        this.partial.push(chunk.subarray(i));
        i = chunk.length;
        break;
      }
      const tail = chunk.subarray(i, newline + 1);
      const line = this.partial.length > 0 ? Buffer.concat([...this.partial, tail]) : tail;
      this.partial = [];
      i = newline + 1;
      const text = line.toString("latin1", Math.max(0, line.length - 24));
      const literal = /\{(\d+)\+?\}\r?\n$/.exec(text);
      if (literal) {
        this.literal = Number(literal[1]);
        continue;
      }
      ends.push(i);
      onLine?.(line.toString("utf8").replace(/\r?\n$/, ""));
    }
    this.atEnd = this.literal === 0 && this.partial.length === 0 && (ends.at(-1) ?? -1) === chunk.length;
    return ends;
  }
}

/** Starts the front on `options.host`; each accepted session gets its own connection to Dovecot. */
export async function startSessionFront(options: SessionFrontOptions): Promise<SessionFront> {
  const { protocol, log, count } = options;
  const open = new Set<() => void>();
  // IMAP: until when each user's sign-ins are throttled (epoch ms), after a `throttled` fault fired.
  const throttledUntil = new Map<string, number>();
  /** The back-off of a `throttled` fault armed for this stage, if one is; counts it down. */
  const throttleFault = (stage: "login" | "command"): number | undefined => {
    const spec = options.faults?.take(protocol, stage);
    if (!spec) return undefined;
    if (spec.kind !== "throttled") return undefined;
    return (spec.retryAfterSeconds ?? DEFAULT_THROTTLE_SECONDS) * 1000;
  };
  /** Milliseconds the user's sign-ins stay throttled (0: not throttled). */
  const throttleLeft = (upn: string | undefined): number => {
    if (!upn) return 0;
    const left = (throttledUntil.get(upn) ?? 0) - Date.now();
    if (left <= 0) throttledUntil.delete(upn);
    return Math.max(0, left);
  };
  const upnOf = (token: string | undefined) => {
    const upn = token ? readJwtClaims(token)?.upn : undefined;
    return typeof upn === "string" ? upn.toLowerCase() : undefined;
  };

  const server = createServer({ key: options.tls.keyPem, cert: options.tls.certPem }, (client) => {
    const backend = tlsConnect({
      host: options.host,
      port: options.backendPort,
      ca: [options.tls.caPem],
      servername: "localhost",
    });
    // Small request/answer exchanges (POP3 RETR, IMAP commands): without this, Nagle's algorithm and
    // delayed ACKs hold each answer back ~40 ms (measured: 29 POP3 RETRs a second instead of thousands).
    client.setNoDelay(true);
    backend.setNoDelay(true);
    const scanner = protocol === "imap" ? new ImapResponseScanner() : undefined;
    let authenticated = false;
    let pending: Buffer = Buffer.alloc(0); // client bytes before sign-in, not yet a whole line
    let authTag: string | undefined; // IMAP: the tag of the AUTHENTICATE in flight
    let expectCredentials = false; // the next client line is the SASL string (two-step form)
    let token: string | undefined; // the token of the sign-in in flight
    let expiry: NodeJS.Timeout | undefined;
    let byeWhenResponseEnds = false;
    let ended = false;
    let user: string | undefined; // IMAP: the signed-in user (from the token)
    let commandsThrottledUntil = 0; // IMAP: this session's commands are answered "throttled" until then
    let throttledPartial: Buffer = Buffer.alloc(0); // an unfinished command line while throttled
    let skipLiteral = 0; // bytes of a LITERAL+ literal that belong to a command answered "throttled"
    let replaceAnswer: { tag: string; text: string } | undefined; // a cancelled two-step sign-in

    const end = () => {
      if (ended) return;
      ended = true;
      if (expiry) clearTimeout(expiry);
      open.delete(end);
      client.destroy();
      backend.destroy();
    };
    open.add(end);

    const invalidate = () => {
      if (ended) return;
      count("dovecot.kick.token-expired");
      log.debug(`${protocol}: session ended, its token expired`);
      if (protocol === "imap") {
        ended = true;
        if (expiry) clearTimeout(expiry);
        open.delete(end);
        backend.destroy();
        client.end(TOKEN_EXPIRED_BYE);
        // A client that does not close its side after the BYE is cut off.
        setTimeout(() => client.destroy(), 2000).unref();
        return;
      }
      end();
    };

    const signedIn = () => {
      authenticated = true;
      const exp = token ? readJwtClaims(token)?.exp : undefined;
      if (protocol === "imap") {
        user = upnOf(token);
        const backoff = throttleFault("command");
        if (backoff !== undefined) {
          commandsThrottledUntil = Date.now() + backoff;
          if (user) throttledUntil.set(user, commandsThrottledUntil);
        }
      }
      token = undefined;
      if (typeof exp !== "number") return;
      expiry = setTimeout(
        () => {
          if (!scanner || scanner.atEnd) invalidate();
          else byeWhenResponseEnds = true;
        },
        Math.max(0, exp * 1000 - Date.now()),
      );
      expiry.unref();
      // Later client bytes go straight to Dovecot.
      if (pending.length > 0) backend.write(pending);
      pending = Buffer.alloc(0);
    };

    /** IMAP: true when this sign-in is to be answered "throttled" (a fault now, or the user's back-off). */
    const refuseThrottledSignIn = (tag: string): boolean => {
      const upn = upnOf(token);
      const backoff = throttleFault("login");
      if (backoff !== undefined && upn) throttledUntil.set(upn, Date.now() + backoff);
      if (throttleLeft(upn) <= 0 && backoff === undefined) return false;
      count("imap.throttled.login");
      log.debug(`imap: sign-in ${tag} of ${upn ?? "?"} answered "throttled"`);
      return true;
    };

    /**
     * IMAP, while this session is throttled: each whole command line is answered "throttled" instead
     * of reaching Dovecot (a LITERAL+ literal after it is dropped too); returns what is left to pass on.
     */
    const throttleCommands = (chunk: Buffer): Buffer => {
      let rest = throttledPartial.length > 0 ? Buffer.concat([throttledPartial, chunk]) : chunk;
      throttledPartial = Buffer.alloc(0);
      while (rest.length > 0 && Date.now() < commandsThrottledUntil) {
        if (skipLiteral > 0) {
          const take = Math.min(skipLiteral, rest.length);
          skipLiteral -= take;
          rest = rest.subarray(take);
          continue;
        }
        const newline = rest.indexOf(0x0a);
        if (newline < 0) {
          throttledPartial = rest;
          return Buffer.alloc(0);
        }
        const line = rest.toString("latin1", 0, newline).replace(/\r$/, "");
        rest = rest.subarray(newline + 1);
        // A synchronising literal ({n}) is never sent: the client waits for "+", and gets the NO.
        const literal = /\{(\d+)\+\}$/.exec(line);
        if (literal) skipLiteral = Number(literal[1]);
        count("imap.throttled.command");
        client.write(throttledAnswer(line.split(" ")[0] || "*", commandsThrottledUntil - Date.now()));
      }
      return rest;
    };

    // One client line before sign-in: watch AUTH, refuse what Exchange refuses, forward the rest.
    const clientLine = (line: Buffer): void => {
      const text = line.toString("latin1").replace(/\r?\n$/, "");
      if (expectCredentials) {
        expectCredentials = false;
        token = bearerIn(text);
        if (authTag !== undefined && refuseThrottledSignIn(authTag)) {
          // Dovecot is waiting for the SASL string: cancel, and answer its BAD with Exchange's words.
          replaceAnswer = { tag: authTag, text: throttledAnswer(authTag, throttleLeft(upnOf(token))) };
          authTag = undefined;
          token = undefined;
          backend.write("*\r\n");
          return;
        }
      } else if (protocol === "pop3") {
        const auth = /^AUTH\s+XOAUTH2(\s+\S+)?\s*$/i.exec(text);
        if (auth?.[1]) {
          count("pop3.auth.one-line-refused");
          client.write(POP3_PROTOCOL_ERROR);
          return;
        }
        if (auth) expectCredentials = true;
      } else {
        const auth = /^(\S+)\s+AUTHENTICATE\s+(?:XOAUTH2|OAUTHBEARER)(?:\s+(\S+))?\s*$/i.exec(text);
        if (auth) {
          authTag = auth[1];
          count("imap.authenticate");
          if (auth[2]) {
            token = bearerIn(auth[2]);
            if (refuseThrottledSignIn(authTag!)) {
              client.write(throttledAnswer(authTag!, throttleLeft(upnOf(token))));
              authTag = undefined;
              token = undefined;
              return;
            }
          } else expectCredentials = true;
        }
      }
      backend.write(line);
    };

    client.on("data", (incoming: Buffer) => {
      if (authenticated) {
        const chunk = commandsThrottledUntil > 0 ? throttleCommands(incoming) : incoming;
        if (chunk.length > 0 && !backend.write(chunk)) client.pause();
        return;
      }
      const chunk = incoming;
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      for (;;) {
        const newline = pending.indexOf(0x0a);
        if (newline < 0) break;
        const line = pending.subarray(0, newline + 1);
        pending = pending.subarray(newline + 1);
        clientLine(line);
        if (authenticated) break;
      }
      if (pending.length > MAX_PRE_AUTH_LINE) end();
    });
    backend.on("drain", () => client.resume());

    // Server lines before sign-in tell whether the AUTH in flight succeeded.
    const serverLine = (line: string): void => {
      if (authenticated) return;
      if (protocol === "imap") {
        if (authTag !== undefined && line.startsWith(`${authTag} `)) {
          const ok = /^\S+ OK\b/i.test(line);
          authTag = undefined;
          if (ok) signedIn();
          else token = undefined;
        }
      } else if (token !== undefined || expectCredentials) {
        if (line.startsWith("+OK")) signedIn();
        else if (line.startsWith("-ERR")) {
          token = undefined;
          expectCredentials = false;
        }
      }
    };

    let serverPartial = ""; // POP3: an unfinished line before sign-in
    backend.on("data", (incoming: Buffer) => {
      if (ended) return;
      let chunk = incoming;
      if (scanner) {
        const preAuth = !authenticated;
        // Lines are read as text only before sign-in; after it only response ends are found.
        const ends = scanner.feed(chunk, authenticated ? undefined : serverLine);
        if (preAuth) chunk = asExchangeAnswers(chunk);
        if (preAuth && replaceAnswer) {
          // Dovecot's answer to the cancelled sign-in becomes Exchange's throttling answer.
          const { tag, text } = replaceAnswer;
          const answered = new RegExp(`^${tag.replace(/[^\w]/g, "\\$&")} [^\r\n]*\r?\n`, "m");
          const line = chunk.toString("latin1");
          if (answered.test(line)) {
            replaceAnswer = undefined;
            chunk = Buffer.from(line.replace(answered, text), "latin1");
          }
        }
        if (byeWhenResponseEnds && ends.length > 0) {
          client.write(chunk.subarray(0, ends[0]));
          invalidate();
          return;
        }
      } else if (!authenticated) {
        const lines = (serverPartial + chunk.toString("utf8")).split("\n");
        serverPartial = lines.pop() ?? "";
        for (const line of lines) serverLine(line.replace(/\r$/, ""));
      }
      if (!client.write(chunk)) backend.pause();
    });
    client.on("drain", () => backend.resume());

    for (const socket of [client, backend] as (Socket | TLSSocket)[]) {
      socket.on("error", (error) => {
        log.debug(`${protocol} front: ${error.message}`);
        end();
      });
      socket.on("close", end);
    }
  });
  server.on("tlsClientError", (error) => log.debug(`${protocol} front: TLS: ${error.message}`));

  await new Promise<void>((resolve, reject) => {
    const onError = (error: Error) =>
      reject(
        new M365MailError("CONNECTION_FAILED", `the ${protocol} front cannot listen on ${options.host}`, {
          source: "emulator-dovecot",
          cause: error,
          hint: "Choose free ports (imapPort/pop3Port) or 0 for any.",
        }),
      );
    server.once("error", onError);
    server.listen(options.port ?? 0, options.host, () => {
      server.off("error", onError);
      resolve();
    });
  });

  return {
    port: (server.address() as AddressInfo).port,
    sessions: () => open.size,
    async close() {
      for (const end of [...open]) end();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
