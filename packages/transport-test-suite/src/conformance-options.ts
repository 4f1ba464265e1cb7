import type { Address, OutgoingMessage, Transport } from "@m365-mail/core";

/** What the suite needs to see of a received message. `Message` from core fits. */
export interface ConformanceMessage {
  readonly id?: string;
  readonly subject: string;
  readonly to?: readonly Address[];
  readonly text?: string;
  readonly html?: string;
  readonly attachments?: readonly { readonly filename: string; readonly content: Uint8Array }[];
}

/** Puts a message into the mailbox under test — for transports that cannot send themselves. */
export interface ConformanceSender {
  /** E.g. another transport's `send`, or the emulator's mail store delivering straight to the Inbox. */
  send(message: OutgoingMessage): Promise<unknown>;
}

/** Looks into the recipient's Inbox — for transports that cannot read themselves. */
export interface ConformanceReader {
  /**
   * Every message in the recipient's Inbox whose subject is exactly `subject` (all of them, so that
   * duplicates show), with text/html body and attachment bytes; `[]` while none has arrived.
   * Called repeatedly until it returns something or `timeoutMs` runs out.
   */
  find(subject: string): Promise<readonly ConformanceMessage[]>;
}

export type ConformanceGroup =
  | "verify"
  | "send"
  | "folders"
  | "paging"
  | "content"
  | "unicode"
  | "watch"
  | "search"
  | "manage"
  | "attachments"
  | "reply"
  | "drafts"
  | "not-supported";

export interface TransportConformanceOptions {
  /** Shown in the test names, e.g. "graph (emulator)". */
  name: string;
  /** Called once before the tests (in `beforeAll`); the transport is closed in `afterAll`. */
  createTransport: () => Transport | Promise<Transport>;
  /**
   * The address test messages are sent to. For a transport that reads, this must be the mailbox it
   * reads (send-to-self); for a send-only transport, the mailbox `reader` looks into.
   */
  recipient: { address: string };
  /**
   * How to put messages into the mailbox under test. Default: the transport's own `send` when it
   * can send. Without either, the read groups are skipped.
   */
  sender?: ConformanceSender;
  /**
   * How to see that a message arrived. Default: the transport's own `listMessages` + `getMessage`
   * when it can read. Without either, the send groups are skipped.
   */
  reader?: ConformanceReader;
  /**
   * Longest wait for any one thing (a message to arrive, a watch event). Every test is bounded by
   * it; the vitest timeout of each test is twice this plus 10 s.
   * @default 30000
   */
  timeoutMs?: number;
  /**
   * Pause between two looks while waiting.
   * @default 250
   */
  pollMs?: number;
  /**
   * Messages seeded for the paging test.
   * @default 7
   */
  seedCount?: number;
  /**
   * Page size used by the paging test (small, so that several pages are needed).
   * @default 3
   */
  pageSize?: number;
  /**
   * How long `watch` gets to establish its starting point before the test sends the message it
   * expects to see.
   * @default 1500
   */
  watchSettleMs?: number;
  /** Groups to leave out, with a reason in your own test file. */
  skip?: readonly ConformanceGroup[];
}
