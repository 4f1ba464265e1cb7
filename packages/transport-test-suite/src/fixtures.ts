import { randomBytes } from "node:crypto";

/** Subject and display name with Latin accents, a dash, CJK and a symbol outside Latin-1. */
export const UNICODE_SUBJECT = "Grüße — 報告 ✓";
export const UNICODE_NAME = "Zoë Ångström";

/** A tag that makes this run's messages unique in a shared mailbox. */
export function runTag(name: string): string {
  return `[${name.replace(/[^A-Za-z0-9-]/g, "")}-${randomBytes(4).toString("hex")}]`;
}

/** Random bytes (every byte value, no text structure) for byte-exact attachment checks. */
export function randomContent(size: number): Uint8Array {
  return new Uint8Array(randomBytes(size));
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(
    Buffer.from(b.buffer, b.byteOffset, b.byteLength),
  );
}

/** Text of a body, with HTML tags stripped when only HTML is there. */
export function bodyText(message: { text?: string; html?: string }): string {
  if (message.text) return message.text;
  return (message.html ?? "")
    .replace(/<[^>]*>/g, " ")
    .replace(/&nbsp;/g, " ")
    .replace(/&amp;/g, "&");
}
