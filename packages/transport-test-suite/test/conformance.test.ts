import { runTransportConformance } from "../src/index.js";
import { MemoryMailbox, memoryTransport } from "./memory-transport.js";

// The suite run against in-memory transports of each shape the real ones have.
const all = { send: true, read: true, watch: true, folders: true, calendar: true };

runTransportConformance({
  name: "memory full",
  createTransport: () => memoryTransport(new MemoryMailbox(), all),
  recipient: { address: "support@contoso.com" },
  timeoutMs: 5_000,
  watchSettleMs: 50,
});

// Read-only (like IMAP/POP3): messages are put in by a sender.
const readBox = new MemoryMailbox();
runTransportConformance({
  name: "memory read-only",
  createTransport: () => memoryTransport(readBox, { ...all, send: false, calendar: false }),
  recipient: { address: "support@contoso.com" },
  sender: { send: async (m) => readBox.deliver(m) },
  timeoutMs: 5_000,
  watchSettleMs: 50,
});

// Send-only (like SMTP): arrival is checked by a reader.
const sendBox = new MemoryMailbox();
runTransportConformance({
  name: "memory send-only",
  createTransport: () =>
    memoryTransport(sendBox, { send: true, read: false, watch: false, folders: false, calendar: false }),
  recipient: { address: "support@contoso.com" },
  reader: { find: async (subject) => sendBox.messages.filter((m) => m.subject === subject) },
  timeoutMs: 5_000,
});
