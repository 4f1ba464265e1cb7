import {
  type ConnectionSettings,
  type ImapConnection,
  openConnection,
  withSignal,
} from "./imap-connection.js";
import { abortedError, isConnectionDrop, toImapError } from "./imap-errors.js";
import type { SaslPreferringImapFlow } from "./xoauth2-imap-flow.js";

interface Slot {
  readonly connection: ImapConnection;
  users: number;
  retired: boolean;
  timer?: NodeJS.Timeout;
}

export interface RunOptions {
  signal?: AbortSignal;
  /** Safe to run again on a new connection when the first one dropped mid-command. */
  retryOnDrop: boolean;
  /** Per-attempt deadline; defaults to the transport's timeoutMs. `0` = none (streams). */
  timeoutMs?: number;
}

/**
 * The one connection the transport's commands share (imapflow queues commands and mailbox locks on it).
 * It is replaced with a fresh token before the token expires, and re-opened after a BYE or a drop;
 * a connection being replaced finishes what it is doing before it logs out.
 */
export class SharedConnection {
  private current: Slot | undefined;
  private opening: Promise<Slot> | undefined;
  private closed = false;
  private readonly all = new Set<Slot>();

  constructor(private readonly settings: ConnectionSettings) {}

  /** Runs `fn` with the shared client; retries once on a fresh connection when the first one dropped. */
  async run<T>(
    operation: string,
    fn: (client: SaslPreferringImapFlow) => Promise<T>,
    options: RunOptions,
  ): Promise<T> {
    const context = { operation, host: this.settings.host, port: this.settings.port };
    for (let attempt = 0; ; attempt++) {
      const slot = await this.acquire(options.signal);
      try {
        const timeoutMs = options.timeoutMs ?? this.settings.timeoutMs;
        return await this.guard(fn(slot.connection.client), slot, operation, options.signal, timeoutMs);
      } catch (error) {
        const dropped = slot.connection.closed || isConnectionDrop(error);
        if (dropped) this.discard(slot);
        if (dropped && options.retryOnDrop && attempt === 0 && !options.signal?.aborted && !this.closed) {
          this.settings.logger.info(`${operation}: connection lost, retrying on a new connection`, {
            bye: slot.connection.byeReason,
          });
          continue;
        }
        throw toImapError(error, context);
      } finally {
        this.release(slot);
      }
    }
  }

  /** The connection for a long operation (a download stream); call `release` when done. */
  async lease(
    signal?: AbortSignal,
  ): Promise<{ client: SaslPreferringImapFlow; release(): void; discard(): void }> {
    const slot = await this.acquire(signal);
    let released = false;
    return {
      client: slot.connection.client,
      release: () => {
        if (released) return;
        released = true;
        this.release(slot);
      },
      discard: () => this.discard(slot),
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    const opening = this.opening;
    this.current = undefined;
    if (opening) await opening.then((slot) => this.retire(slot)).catch(() => {});
    await Promise.all([...this.all].map((slot) => this.retire(slot, true)));
  }

  private async acquire(signal?: AbortSignal): Promise<Slot> {
    if (this.closed) throw abortedError("the imap transport was closed");
    const slot = this.current;
    if (slot && !slot.connection.closed && !slot.retired && Date.now() < slot.connection.renewAt) {
      slot.users++;
      return slot;
    }
    if (slot) {
      // Token about to expire or connection gone: new commands go to a fresh connection.
      if (this.current === slot) this.current = undefined;
      void this.retire(slot);
    }
    if (!this.opening) {
      // Not tied to one caller's signal: other callers may be waiting for the same connection.
      this.opening = openConnection(this.settings, { autoIdle: true, purpose: "shared connection" })
        .then((connection) => this.adopt(connection))
        .finally(() => {
          this.opening = undefined;
        });
    }
    const fresh = await withSignal(this.opening, signal, "connecting");
    if (this.closed) {
      void this.retire(fresh, true);
      throw abortedError("the imap transport was closed");
    }
    fresh.users++;
    return fresh;
  }

  private adopt(connection: ImapConnection): Slot {
    const slot: Slot = { connection, users: 0, retired: false };
    this.all.add(slot);
    this.current = slot;
    // Replace an unused connection before its token runs out, instead of waiting for the server's BYE.
    slot.timer = setTimeout(
      () => {
        if (slot.users === 0) {
          if (this.current === slot) this.current = undefined;
          void this.retire(slot);
        }
      },
      Math.max(0, connection.renewAt - Date.now()),
    );
    slot.timer.unref();
    void connection.whenClosed.then(() => {
      if (this.current === slot) this.current = undefined;
      clearTimeout(slot.timer);
      this.all.delete(slot);
    });
    return slot;
  }

  private release(slot: Slot): void {
    slot.users = Math.max(0, slot.users - 1);
    if (slot.retired && slot.users === 0) void slot.connection.end();
  }

  private discard(slot: Slot): void {
    if (this.current === slot) this.current = undefined;
    slot.retired = true;
    slot.connection.client.close();
  }

  private async retire(slot: Slot, now = false): Promise<void> {
    slot.retired = true;
    clearTimeout(slot.timer);
    if (now) slot.connection.client.close();
    else if (slot.users === 0) await slot.connection.end();
  }

  private guard<T>(
    promise: Promise<T>,
    slot: Slot,
    operation: string,
    signal: AbortSignal | undefined,
    timeoutMs: number,
  ): Promise<T> {
    const guarded = withSignal(promise, signal, operation, () => this.discard(slot));
    if (!timeoutMs) return guarded;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        // The command's state on the server is unknown: this connection cannot be trusted any more.
        this.discard(slot);
        const error = Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: "ETIMEOUT" });
        reject(toImapError(error, { operation, host: this.settings.host, port: this.settings.port }));
      }, timeoutMs);
    });
    return Promise.race([guarded, timeout]).finally(() => clearTimeout(timer));
  }
}
