import {
  type MailEvent,
  type Message,
  type MessageSummary,
  notSupported,
  type OutgoingMessage,
  parseAddressList,
  type Transport,
  type TransportCapabilities,
} from "@m365-mail/core";

/** One in-memory Inbox shared by the transports below. */
export class MemoryMailbox {
  readonly messages: Message[] = [];
  private listeners = new Set<(m: Message) => void>();
  private next = 1;

  deliver(m: OutgoingMessage): string {
    const id = String(this.next++);
    const to = parseAddressList(m.to);
    const message: Message = {
      id,
      folder: "inbox",
      subject: m.subject ?? "",
      to,
      cc: [],
      receivedAt: new Date(),
      ...(m.text !== undefined ? { text: m.text } : {}),
      attachments: (m.attachments ?? []).map((a) => {
        const content =
          typeof a.content === "string" ? new Uint8Array(Buffer.from(a.content)) : new Uint8Array(a.content);
        return {
          filename: a.filename,
          contentType: a.contentType ?? "application/octet-stream",
          size: content.byteLength,
          content,
        };
      }),
    };
    this.messages.push(message);
    for (const l of this.listeners) l(message);
    return `<${id}@memory.test>`;
  }

  subscribe(listener: (m: Message) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

/** A transport over a MemoryMailbox with the capabilities asked for; lacking methods throw NOT_SUPPORTED. */
export function memoryTransport(box: MemoryMailbox, capabilities: TransportCapabilities): Transport {
  const summary = ({ text: _t, attachments: _a, ...rest }: Message): MessageSummary => rest;
  return {
    kind: "transport",
    name: "memory",
    capabilities,
    async verify() {
      return { transport: "memory", ok: true, checks: [{ name: "memory", ok: true, detail: "in memory" }] };
    },
    async send(m) {
      if (!capabilities.send) throw notSupported("memory", "send");
      const messageId = box.deliver(m);
      return {
        transport: "memory",
        messageId,
        accepted: parseAddressList(m.to).map((a) => a.address),
        rejected: [],
      };
    },
    async listFolders() {
      if (!capabilities.folders) throw notSupported("memory", "listFolders");
      return [
        { id: "inbox", name: "Inbox", path: "Inbox", specialUse: "inbox" },
        { id: "sent", name: "Sent Items", path: "Sent Items", specialUse: "sent" },
      ];
    },
    async *listMessages(query = {}) {
      if (!capabilities.read) throw notSupported("memory", "listMessages");
      const pageSize = query.pageSize ?? 50;
      // Paged like a server: a snapshot per page.
      for (let start = 0; start < box.messages.length; start += pageSize) {
        for (const m of box.messages.slice(start, start + pageSize)) yield summary(m);
      }
    },
    async getMessage(id) {
      if (!capabilities.read) throw notSupported("memory", "getMessage");
      const m = box.messages.find((x) => x.id === id);
      if (!m) throw new Error(`no message ${id}`);
      return m;
    },
    async *watch(_query, options) {
      if (!capabilities.watch) throw notSupported("memory", "watch");
      const queue: MailEvent[] = [];
      let wake: (() => void) | undefined;
      const off = box.subscribe((m) => {
        queue.push({ type: "created", message: summary(m) });
        wake?.();
      });
      const onAbort = () => wake?.();
      options?.signal?.addEventListener("abort", onAbort);
      try {
        while (!options?.signal?.aborted) {
          const event = queue.shift();
          if (event) yield event;
          else await new Promise<void>((resolve) => (wake = resolve));
        }
      } finally {
        off();
        options?.signal?.removeEventListener("abort", onAbort);
      }
    },
    async *listEvents() {
      if (!capabilities.calendar) throw notSupported("memory", "listEvents");
      yield* [];
    },
    async close() {},
  };
}
