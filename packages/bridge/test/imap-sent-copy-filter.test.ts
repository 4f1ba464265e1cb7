/**
 * The IMAP Sent Items filter on its own: every byte it does not mean to change passes unchanged, however
 * the stream is cut into chunks, and the bridge's `+` never lands inside a server response.
 */
import { describe, expect, it } from "vitest";
import { ResponseJoints, SentCopyFilter } from "../src/imap/imap-sent-copy-filter.js";
import { ImapThrottleWatch } from "../src/imap/imap-throttle-watch.js";
import { redisSentCopies, SentCopies } from "../src/sent-copies.js";

const MAILBOX = "support@contoso.com";

function message(id: string, body = "hello"): string {
  return `From: support@contoso.com\r\nMessage-ID: <${id}>\r\nSubject: s\r\n\r\n${body}\r\n`;
}

/** Feeds `input` through a filter in chunks of `size` bytes and returns what reaches each side. */
async function filter(input: string, size: number, sent: string[] = []) {
  const sentCopies = new SentCopies(() => true);
  for (const id of sent) sentCopies.remember("a", MAILBOX, `<${id}>`);
  const joints = new ResponseJoints();
  const dropped: string[] = [];
  const toServer: Buffer[] = [];
  const toClient: Buffer[] = [];
  const f = new SentCopyFilter({ mailbox: MAILBOX, sentCopies, joints, onDropped: (id) => dropped.push(id) });
  f.on("data", (c: Buffer) => toServer.push(c));
  joints.on("data", (c: Buffer) => toClient.push(c));
  const bytes = Buffer.from(input, "latin1");
  for (let i = 0; i < bytes.length; i += size) f.write(bytes.subarray(i, i + size));
  f.end();
  await new Promise((resolve) => f.once("end", resolve));
  return {
    toServer: Buffer.concat(toServer).toString("latin1"),
    toClient: Buffer.concat(toClient).toString("latin1"),
    dropped,
  };
}

const chunkSizes = [1, 2, 3, 7, 64, 100_000];

describe("SentCopyFilter", () => {
  it.each(chunkSizes)("passes commands and literals through unchanged (chunks of %i)", async (size) => {
    const m = message("other@x");
    const lookalike = "b9 APPEND INBOX {5+}\r\nhello";
    const input = [
      "a1 SELECT INBOX\r\n",
      // A literal whose bytes look like an APPEND: data, not a command.
      `a2 SEARCH HEADER Subject {${lookalike.length}}\r\n${lookalike}\r\n`,
      `a3 APPEND "Sent Items" (\\Seen) {${m.length}+}\r\n${m}\r\n`,
      "a4 UID FETCH 1:* (FLAGS)\r\n",
    ].join("");
    const out = await filter(input, size, ["known@x"]);
    expect(out.toServer).toBe(input);
    expect(out.toClient).toBe("");
    expect(out.dropped).toEqual([]);
  });

  it.each(chunkSizes)(
    "answers a synchronizing APPEND's + itself and sends it on as LITERAL+ (chunks of %i)",
    async (size) => {
      const m = message("other@x");
      const out = await filter(`a1 APPEND "Sent Items" (\\Seen) {${m.length}}\r\n${m}\r\na2 NOOP\r\n`, size);
      expect(out.toClient).toBe("+ Ready for literal data.\r\n");
      expect(out.toServer).toBe(`a1 APPEND "Sent Items" (\\Seen) {${m.length}+}\r\n${m}\r\na2 NOOP\r\n`);
    },
  );

  it.each(chunkSizes)(
    "leaves out the upload of a message the bridge sent, once (chunks of %i)",
    async (size) => {
      const m = message("known@x", "x".repeat(100_000));
      const upload = (tag: string) => `${tag} APPEND "Sent Items" (\\Seen) {${m.length}}\r\n${m}\r\n`;
      const out = await filter(`${upload("a1")}a2 NOOP\r\n${upload("a3")}`, size, ["known@x"]);
      // a1's bytes never reach the server; its OK comes from the server's answer to `a1 NOOP`, in order.
      expect(out.toServer).toBe(`a1 NOOP\r\na2 NOOP\r\n${upload("a3").replace("}\r\n", "+}\r\n")}`);
      expect(out.dropped).toEqual(["<known@x>"]);
      expect(out.toClient).toBe("+ Ready for literal data.\r\n".repeat(2));
    },
  );

  it("is off after COMPRESS: the bytes that follow are deflated", async () => {
    const input = `a1 COMPRESS DEFLATE\r\na2 APPEND INBOX {${message("known@x").length}}\r\n`;
    const out = await filter(input, 5, ["known@x"]);
    expect(out.toServer).toBe(input);
    expect(out.toClient).toBe("");
  });
});

describe("ResponseJoints", () => {
  it.each(chunkSizes)(
    "puts the bridge's line between two responses, never inside a literal (chunks of %i)",
    async (size) => {
      const joints = new ResponseJoints();
      const out: Buffer[] = [];
      joints.on("data", (c: Buffer) => out.push(c));
      const body = "+ looks like a continuation\r\n".repeat(20);
      const response = `* 1 FETCH (BODY[] {${body.length}}\r\n${body})\r\na1 OK done\r\n`;
      const bytes = Buffer.from(response, "latin1");
      let inserted = false;
      for (let i = 0; i < bytes.length; i += size) {
        joints.write(bytes.subarray(i, i + size));
        // Ask as soon as the literal has started: the line must wait for the response's end.
        if (!inserted && i + size > 40) {
          joints.insert("+ Ready\r\n");
          inserted = true;
        }
      }
      joints.end();
      await new Promise((resolve) => joints.once("end", resolve));
      const text = Buffer.concat(out).toString("latin1");
      const fetchEnd = response.indexOf("a1 OK");
      expect(text.replace("+ Ready\r\n", "")).toBe(response);
      expect([fetchEnd, response.length]).toContain(text.indexOf("+ Ready\r\n"));
    },
  );
});

describe("SentCopies across a fleet", () => {
  it("trusts the fleet's answer, and only its own memory while Redis cannot be asked", async () => {
    const fleet = new Map<string, boolean | undefined>();
    let redisAway = false;
    const shared = {
      remember: () => {},
      take: async () => (redisAway ? undefined : (fleet.get("answer") ?? false)),
    };
    const copies = new SentCopies(() => true, undefined, shared);
    copies.remember("a", MAILBOX, "<one@x>");
    // Another bridge took it already: not left out twice.
    expect(await copies.take(MAILBOX, "<one@x>")).toBe(false);
    copies.remember("a", MAILBOX, "<two@x>");
    redisAway = true;
    expect(await copies.take(MAILBOX, "two@x")).toBe(true);
    expect(await copies.take(MAILBOX, "two@x")).toBe(false);
  });

  it("does not hold an upload for long when Redis is away", async () => {
    const { Redis } = await import("ioredis");
    const redis = new Redis({ host: "127.0.0.1", port: 9, lazyConnect: false, maxRetriesPerRequest: null });
    redis.on("error", () => {});
    const warnings: string[] = [];
    const logger = { debug() {}, info() {}, warn: (m: string) => warnings.push(m), error() {} };
    try {
      const started = Date.now();
      expect(await redisSentCopies(redis, logger).take("k")).toBeUndefined();
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(warnings.join("\n")).toContain("sent messages are not shared with the other bridges");
    } finally {
      redis.disconnect();
    }
  });
});

describe("ResponseJoints with the throttling watch", () => {
  it.each(chunkSizes)("hands it each response line once, never a literal's (chunks of %i)", async (size) => {
    const answer = "Request is throttled. Suggested Backoff Time: 89117 milliseconds";
    const inLiteral = `a2 NO ${answer}\r\n`;
    const stream = `* 1 FETCH (BODY[] {${inLiteral.length}}\r\n${inLiteral})\r\na2 OK done\r\na3 NO ${answer}\r\n`;
    const seen: number[] = [];
    const watch = new ImapThrottleWatch((ms) => seen.push(ms));
    const joints = new ResponseJoints((bytes, length) => watch.checkLine(bytes, length));
    const out: Buffer[] = [];
    joints.on("data", (c: Buffer) => out.push(c));
    const bytes = Buffer.from(stream, "latin1");
    for (let i = 0; i < bytes.length; i += size) joints.write(bytes.subarray(i, i + size));
    joints.end();
    await new Promise((resolve) => joints.once("end", resolve));
    expect(seen).toEqual([89117]);
    expect(Buffer.concat(out).toString("latin1")).toBe(stream);
  });
});
