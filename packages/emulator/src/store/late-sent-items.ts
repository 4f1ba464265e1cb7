import { randomUUID } from "node:crypto";
import type { FaultRegistry } from "../context.js";
import type { DeliverOptions, StoredMessage } from "./mail-store.js";

/** The one method both the store and the SMTP part's sink have. */
interface Filing {
  deliver(upn: string, folder: string, raw: Uint8Array, options?: DeliverOptions): Promise<unknown>;
}

/**
 * The mail store as one part (graph, smtp) files into it, with the `lateSentItems` fault: a Sent Items
 * copy filed late or never, as Exchange sometimes does under load. Lets a test show what a client does
 * when a send's copy is not (yet) where it looks before a resend. Everything else passes through.
 */
export function withLateSentItems<S extends Filing>(store: S, faults: FaultRegistry, part: string): S {
  const deliver: Filing["deliver"] = (upn, folder, raw, options) => {
    if (folder.toLowerCase() !== "sentitems") return store.deliver(upn, folder, raw, options);
    const fault = faults.take("sentitems", `${part}:${upn.toLowerCase()}`);
    if (fault?.kind !== "lateSentItems") return store.deliver(upn, folder, raw, options);
    if (fault.delayMs !== undefined) {
      const copy = Buffer.from(raw);
      // The store may be gone by then (emulator stopped): a late copy is best effort, like Exchange's.
      setTimeout(
        () => store.deliver(upn, folder, copy, options).catch(() => undefined),
        fault.delayMs,
      ).unref();
    }
    // Callers of a send ignore the filed copy's record; nothing may read this placeholder.
    const now = new Date();
    const placeholder: StoredMessage = {
      id: `late-${randomUUID()}`,
      folderId: "",
      folderPath: "",
      filename: "",
      size: raw.byteLength,
      receivedAt: now,
      seen: true,
      flagged: false,
      answered: false,
      draft: false,
      flags: "S",
      changeKey: "0",
    };
    return Promise.resolve(placeholder);
  };
  return new Proxy(store, {
    get(target, property, receiver) {
      if (property === "deliver") return deliver;
      const value = Reflect.get(target, property, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}
