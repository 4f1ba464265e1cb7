import { isIP, connect as netConnect, type Socket } from "node:net";
import { type TLSSocket, connect as tlsConnect } from "node:tls";
import { M365MailError } from "@m365-mail/core";
import type { UpstreamEndpoint } from "../front-door.js";
import { LineReader, ReadError } from "./line-reader.js";

/** Upstream answers (greetings, CAPABILITY lines) longer than this are not IMAP/POP3. */
const MAX_UPSTREAM_LINE = 64 * 1024;

/**
 * The connection to Microsoft 365's IMAP or POP3 server while the bridge signs in on it: a line dialogue
 * with a deadline on every read. `detach()` ends the dialogue and hands over the socket for the relay.
 */
export class UpstreamConnection {
  private reader: LineReader;

  private constructor(
    public socket: Socket,
    readonly endpoint: UpstreamEndpoint,
    private readonly timeoutMs: number,
  ) {
    this.reader = new LineReader(socket, MAX_UPSTREAM_LINE);
    socket.on("error", () => {});
  }

  /** "host:port", for logs and session records. */
  get label(): string {
    return `${this.endpoint.host}:${this.endpoint.port}`;
  }

  /** Opens TCP (for "starttls") or TLS (for "tls") to the endpoint; the protocol reads the greeting. */
  static async open(endpoint: UpstreamEndpoint, timeoutMs: number): Promise<UpstreamConnection> {
    const socket =
      endpoint.security === "tls"
        ? tlsConnect({ ...tlsOptions(endpoint), port: endpoint.port })
        : netConnect({ host: endpoint.host, port: endpoint.port });
    socket.setNoDelay(true);
    await waitFor(socket, endpoint.security === "tls" ? "secureConnect" : "connect", timeoutMs, endpoint);
    return new UpstreamConnection(socket, endpoint, timeoutMs);
  }

  write(text: string): void {
    this.socket.write(text);
  }

  /** The next line as text, or CONNECTION_FAILED / TIMEOUT. */
  async readLine(): Promise<string> {
    let timer: NodeJS.Timeout | undefined;
    try {
      const line = await Promise.race([
        this.reader.readLine(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new M365MailError("TIMEOUT", `${this.label} did not answer within ${this.timeoutMs} ms`, {
                  source: "bridge",
                  hint: "Check that the upstream host and port are Exchange Online's IMAP/POP3 service and reachable from the bridge.",
                }),
              ),
            this.timeoutMs,
          );
        }),
      ]);
      return line.toString("utf8");
    } catch (error) {
      if (error instanceof ReadError) {
        throw new M365MailError("CONNECTION_FAILED", `${this.label} closed the connection during sign-in`, {
          source: "bridge",
          cause: error,
          hint: "Retry; if it persists, check the upstream host and port and that the service is up.",
        });
      }
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /** After the server's go-ahead to STARTTLS/STLS: the TLS handshake on the same connection. */
  async startTls(): Promise<void> {
    if (this.reader.buffered > 0) {
      // Bytes before the handshake could have been injected by someone on the path (CVE-2011-0411 class).
      this.close();
      throw new M365MailError("INVALID_RESPONSE", `${this.label} sent data before the TLS handshake`, {
        source: "bridge",
        hint: "Use the upstream's implicit TLS port (Exchange Online: IMAP 993, POP3 995).",
      });
    }
    this.reader.detach();
    const secure: TLSSocket = tlsConnect({ ...tlsOptions(this.endpoint), socket: this.socket });
    this.socket = secure;
    secure.on("error", () => {});
    await waitFor(secure, "secureConnect", this.timeoutMs, this.endpoint);
    this.reader = new LineReader(secure, MAX_UPSTREAM_LINE);
  }

  /** Ends the dialogue: the socket (paused) and any bytes the server sent beyond the last line read. */
  detach(): { socket: Socket; rest: Buffer } {
    return { socket: this.socket, rest: this.reader.detach() };
  }

  close(): void {
    this.socket.destroy();
  }
}

function tlsOptions(endpoint: UpstreamEndpoint) {
  const servername = endpoint.servername ?? (isIP(endpoint.host) ? undefined : endpoint.host);
  return {
    host: endpoint.host,
    ...(servername ? { servername } : {}),
    ...(endpoint.ca ? { ca: endpoint.ca } : {}),
    minVersion: "TLSv1.2" as const,
  };
}

function waitFor(
  socket: Socket,
  event: string,
  timeoutMs: number,
  endpoint: UpstreamEndpoint,
): Promise<void> {
  const where = `${endpoint.host}:${endpoint.port}`;
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () =>
        fail(
          new M365MailError("TIMEOUT", `connecting to ${where} timed out after ${timeoutMs} ms`, {
            source: "bridge",
            hint: "Check the upstream host and port and that a firewall lets the bridge reach them.",
          }),
        ),
      timeoutMs,
    );
    const onEvent = () => {
      cleanup();
      resolve();
    };
    const onError = (error: NodeJS.ErrnoException) =>
      fail(
        new M365MailError("CONNECTION_FAILED", `cannot connect to ${where}: ${error.code ?? error.message}`, {
          source: "bridge",
          cause: error,
          hint:
            error.code === "ERR_TLS_CERT_ALTNAME_INVALID" || /certificate/i.test(error.message)
              ? "The upstream's TLS certificate is not trusted for that name: check the upstream host (and its CA for a test server)."
              : "Check the upstream host and port (Exchange Online: outlook.office365.com, IMAP 993, POP3 995) and that a firewall lets the bridge reach them.",
        }),
      );
    const onClose = () =>
      fail(new M365MailError("CONNECTION_FAILED", `${where} closed the connection`, { source: "bridge" }));
    const fail = (error: M365MailError) => {
      cleanup();
      socket.destroy();
      reject(error);
    };
    const cleanup = () => {
      clearTimeout(timer);
      socket.off(event, onEvent);
      socket.off("error", onError);
      socket.off("close", onClose);
    };
    socket.once(event, onEvent);
    socket.once("error", onError);
    socket.once("close", onClose);
  });
}
