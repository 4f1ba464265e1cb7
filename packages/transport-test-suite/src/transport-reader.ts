import type { Transport } from "@m365-mail/core";
import type { ConformanceMessage, ConformanceReader } from "./conformance-options.js";

/**
 * A reader over a transport that can read: lists the Inbox (messages received since `since`) and
 * fetches each message whose subject matches.
 */
export function transportReader(
  transport: Transport,
  since = new Date(Date.now() - 10 * 60_000),
): ConformanceReader {
  return {
    async find(subject: string): Promise<ConformanceMessage[]> {
      if (!transport.listMessages || !transport.getMessage) return [];
      const found: ConformanceMessage[] = [];
      for await (const summary of transport.listMessages({ folder: "inbox", since, pageSize: 50 })) {
        if (summary.subject !== subject) continue;
        found.push(await transport.getMessage(summary.id, { folder: summary.folder ?? "inbox" }));
      }
      return found;
    },
  };
}
