import type { Socket } from "node:net";
import { type SecureContext, TLSSocket } from "node:tls";
import type { BridgeProtocol, ClientInfo } from "../front-door.js";

/** How a session ended, as `SessionRecord.result` reports it. */
export type SessionResult = "ok" | "auth-failed" | "refused" | "upstream-failed" | "timeout" | "error";

/** Once the last words are written, a client that does not close gets this long before the socket is destroyed. */
const CLOSE_GRACE_MS = 2000;

/**
 * One client connection, from accept to close: the socket it currently speaks on (the plain socket, or
 * the TLS socket after implicit TLS or STARTTLS), what it did, and how to end it. Protocol code reads and
 * writes through it; the listener enforces limits on it and writes its `SessionRecord`.
 */
export class ClientSession {
  /** The socket protocol code reads and writes: TLS once the connection is encrypted. */
  socket: Socket;
  account: string | undefined;
  upstream: string | undefined;
  result: SessionResult = "ok";
  errorCode: string | undefined;
  /** "login" until the relay starts; limits on lines and login time apply only then. */
  stage: "login" | "relay" = "login";
  readonly startedAt = Date.now();
  readonly closed: Promise<void>;
  private upstreamSocket: Socket | undefined;
  private encrypted = false;

  constructor(
    /** The TCP connection; its byte counters are the session's traffic on the wire. */
    readonly raw: Socket,
    readonly protocol: BridgeProtocol,
  ) {
    this.socket = raw;
    this.closed = new Promise((resolve) => raw.once("close", () => resolve()));
    raw.once("close", () => this.upstreamSocket?.destroy());
    // Errors end the session through "close"; an unhandled "error" must not crash the process.
    raw.on("error", () => {});
  }

  get address(): string {
    return normaliseAddress(this.raw.remoteAddress ?? "");
  }

  get info(): ClientInfo {
    return {
      address: this.address,
      port: this.raw.remotePort ?? 0,
      protocol: this.protocol,
      tls: this.encrypted,
    };
  }

  get tls(): boolean {
    return this.encrypted;
  }

  get isOpen(): boolean {
    return !this.raw.destroyed && this.socket.writable;
  }

  write(text: string | Buffer): void {
    if (this.isOpen) this.socket.write(text);
  }

  /** Upgrades the connection to TLS as the server (implicit TLS, STARTTLS, STLS); rejects on a failed handshake. */
  startTls(context: SecureContext, timeoutMs: number): Promise<void> {
    const secure = new TLSSocket(this.raw, { isServer: true, secureContext: context });
    secure.on("error", () => this.raw.destroy());
    this.socket = secure;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => done(new Error("the TLS handshake timed out")), timeoutMs);
      const onSecure = () => done();
      const onError = (error: Error) => done(error);
      const done = (error?: Error) => {
        clearTimeout(timer);
        secure.off("secure", onSecure);
        secure.off("error", onError);
        secure.off("close", onClose);
        if (error) {
          this.raw.destroy();
          reject(error);
        } else {
          this.encrypted = true;
          resolve();
        }
      };
      const onClose = () => done(new Error("the client closed the connection during the TLS handshake"));
      secure.once("secure", onSecure);
      secure.once("error", onError);
      secure.once("close", onClose);
    });
  }

  /** The relay's other end: destroyed with this session. */
  attachUpstream(socket: Socket): void {
    this.upstreamSocket = socket;
    if (this.raw.destroyed) socket.destroy();
  }

  /** Writes the last words (if any), closes, and destroys the socket if the client lingers. */
  end(lastWords?: string): void {
    if (this.raw.destroyed) return;
    if (lastWords && this.socket.writable) this.socket.end(lastWords);
    else this.socket.end();
    setTimeout(() => this.raw.destroy(), CLOSE_GRACE_MS).unref();
  }

  destroy(): void {
    this.socket.destroy();
    this.raw.destroy();
    this.upstreamSocket?.destroy();
  }
}

/** `::ffff:10.0.0.1` and `10.0.0.1` are one client. */
export function normaliseAddress(address: string): string {
  return address.startsWith("::ffff:") && address.includes(".") ? address.slice(7) : address;
}
