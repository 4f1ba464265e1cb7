import { validateOutgoingMessage } from "./address.js";
import {
  CONTRACT_VERSION,
  type OperationOptions,
  type TokenProvider,
  type Transport,
  type TransportRegistry,
  type VerifyReport,
} from "./contracts.js";
import { M365MailError, notSupported } from "./errors.js";
import type { OutgoingMessage, SendResult } from "./message.js";

export interface MailboxContext {
  readonly auth: TokenProvider;
}

/** A transport, or a factory that receives the mailbox's token provider. */
export type TransportInput = Transport | ((context: MailboxContext) => Transport);

export interface CreateMailboxOptions {
  auth: TokenProvider;
  /** Registered in order; the first one that can send is the default for `send()`. */
  transports: readonly TransportInput[];
}

export type TransportName = keyof TransportRegistry | (string & {});
type TransportOf<N> = N extends keyof TransportRegistry ? TransportRegistry[N] : Transport;

export interface SendOptions {
  /**
   * Which transport sends. An array is tried in order, moving on only when the error proves nothing
   * was submitted (a permission or protocol switch, a refused sign-in), never after a possible delivery.
   */
  via?: TransportName | readonly TransportName[];
  signal?: AbortSignal;
  /** Upload progress of a large message, when the transport reports it (see OperationOptions). */
  onProgress?: OperationOptions["onProgress"];
}

export interface Mailbox {
  readonly auth: TokenProvider;
  /** Typed lookup: `mailbox.transport("imap")` is an `ImapTransport` once that package is imported. */
  transport<N extends TransportName>(name: N): TransportOf<N>;
  has(name: string): boolean;
  transports(): readonly Transport[];
  send(message: OutgoingMessage, options?: SendOptions): Promise<SendResult>;
  verify(options?: { signal?: AbortSignal }): Promise<VerifyReport[]>;
  /** Closes every transport, then disposes the token provider. */
  close(): Promise<void>;
}

// Errors that are raised before a message is handed to the server: safe to try another transport.
const NOTHING_SUBMITTED = new Set([
  "NOT_SUPPORTED",
  "PROTOCOL_DISABLED",
  "ACCESS_DENIED",
  "WRONG_SCOPE",
  "CONSENT_REQUIRED",
  "AUTH_FAILED",
]);

export function createMailbox(options: CreateMailboxOptions): Mailbox {
  const { auth } = options;
  if (auth?.kind !== "token-provider") {
    throw new M365MailError("CONFIG_INVALID", "createMailbox needs `auth`, a TokenProvider", {
      hint: "Pass auth: ropcTokenProvider({ tenantId, clientId, username, password }).",
    });
  }
  const byName = new Map<string, Transport>();
  for (const input of options.transports) {
    const transport = typeof input === "function" ? input({ auth }) : input;
    if (transport?.kind !== "transport" || typeof transport.name !== "string") {
      throw new M365MailError("CONFIG_INVALID", "an entry of `transports` is not a Transport", {
        hint: "Pass the result of a transport factory such as graphTransport({ auth }).",
      });
    }
    if (transport.contractVersion !== undefined && transport.contractVersion !== CONTRACT_VERSION) {
      throw new M365MailError(
        "CONFIG_INVALID",
        `transport "${transport.name}" was built for contract ${transport.contractVersion}, this core speaks ${CONTRACT_VERSION}`,
        { hint: "Install matching versions of @m365-mail/core and the transport package." },
      );
    }
    if (byName.has(transport.name)) {
      throw new M365MailError(
        "CONFIG_INVALID",
        `a transport named "${transport.name}" is already registered`,
        {
          hint: "Register each transport once, or give the second one another `name`.",
        },
      );
    }
    byName.set(transport.name, transport);
  }

  const lookup = (name: string): Transport => {
    const transport = byName.get(name);
    if (!transport) {
      const known = [...byName.keys()].join(", ") || "none";
      throw new M365MailError(
        "CONFIG_INVALID",
        `no transport named "${name}" is registered (registered: ${known})`,
        {
          hint: `Add it to createMailbox({ transports: [...] }).`,
        },
      );
    }
    return transport;
  };

  return {
    auth,
    transport: <N extends TransportName>(name: N) => lookup(name) as TransportOf<N>,
    has: (name) => byName.has(name),
    transports: () => [...byName.values()],
    async send(message, sendOptions = {}) {
      validateOutgoingMessage(message);
      const names =
        sendOptions.via === undefined
          ? [...byName.values()]
              .filter((t) => t.capabilities.send)
              .map((t) => t.name)
              .slice(0, 1)
          : typeof sendOptions.via === "string"
            ? [sendOptions.via]
            : [...sendOptions.via];
      if (names.length === 0) throw notSupported("mailbox", "send (no registered transport can send)");
      let lastError: unknown;
      for (const name of names) {
        const transport = lookup(name);
        if (!transport.send || !transport.capabilities.send) {
          lastError = notSupported(name, "send");
          continue;
        }
        try {
          return await transport.send(message, {
            signal: sendOptions.signal,
            ...(sendOptions.onProgress ? { onProgress: sendOptions.onProgress } : {}),
          });
        } catch (error) {
          lastError = error;
          if (!(error instanceof M365MailError && NOTHING_SUBMITTED.has(error.code))) throw error;
        }
      }
      throw lastError;
    },
    async verify(verifyOptions) {
      return Promise.all([...byName.values()].map((t) => t.verify(verifyOptions)));
    },
    async close() {
      const results = await Promise.allSettled([...byName.values()].map((t) => t.close()));
      await auth.dispose?.();
      const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
      if (failed) throw failed.reason;
    },
  };
}
