import {
  createMailbox,
  isM365MailError,
  type MailEvent,
  type OutgoingMessage,
  type TokenProvider,
  type Transport,
} from "@m365-mail/core";
import { afterAll, beforeAll, describe, expect, it, type TestContext } from "vitest";
import type {
  ConformanceMessage,
  ConformanceReader,
  TransportConformanceOptions,
} from "./conformance-options.js";
import { bodyText, bytesEqual, randomContent, runTag, UNICODE_NAME, UNICODE_SUBJECT } from "./fixtures.js";
import { registerOperationTests, unsupportedOperationProbes } from "./operation-tests.js";
import { transportReader } from "./transport-reader.js";
import { waitFor } from "./wait-for.js";

/**
 * Registers the conformance tests for one transport with vitest (`describe`/`it`). Call it at the
 * top level of a test file. Groups run or skip according to the transport's `capabilities` and
 * to the `sender`/`reader` you give.
 */
export function runTransportConformance(options: TransportConformanceOptions): void {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const pollMs = options.pollMs ?? 250;
  const seedCount = options.seedCount ?? 7;
  const pageSize = options.pageSize ?? 3;
  const watchSettleMs = options.watchSettleMs ?? 1500;
  const testTimeout = timeoutMs * 2 + 10_000;
  const wait = { timeoutMs, pollMs };
  const skipped = new Set(options.skip ?? []);
  const to = options.recipient.address;

  describe(`transport conformance: ${options.name}`, () => {
    let transport: Transport;
    const tag = runTag(options.name);

    beforeAll(async () => {
      transport = await options.createTransport();
    }, testTimeout);
    afterAll(async () => {
      await transport?.close();
    }, testTimeout);

    const group = (ctx: TestContext, name: (typeof options.skip & {})[number]) => {
      if (skipped.has(name)) ctx.skip(`group "${name}" skipped by the caller`);
    };
    /** Puts a message into the mailbox under test. */
    const seeder = (ctx: TestContext): ((m: OutgoingMessage) => Promise<unknown>) => {
      if (options.sender) return (m) => options.sender!.send(m);
      if (transport.capabilities.send && transport.send) return (m) => transport.send!(m);
      return ctx.skip(
        "no way to put mail into the mailbox: the transport cannot send and no `sender` was given",
      );
    };
    /** Sees what arrived in the recipient's Inbox. */
    const reader = (ctx: TestContext): ConformanceReader => {
      if (options.reader) return options.reader;
      if (transport.capabilities.read) return transportReader(transport);
      return ctx.skip("no way to see arrived mail: the transport cannot read and no `reader` was given");
    };
    /** The message as received: through the transport when it reads, else through the reader. */
    const receive = async (ctx: TestContext, subject: string): Promise<ConformanceMessage> => {
      const source = transport.capabilities.read ? transportReader(transport) : reader(ctx);
      const found = await waitFor(
        `"${subject}" to arrive`,
        () => source.find(subject),
        (l) => l.length > 0,
        wait,
      );
      return found[0]!;
    };
    /** Sends with the transport when it can (that is what is under test), else seeds. */
    const deliver = (ctx: TestContext, m: OutgoingMessage) =>
      transport.capabilities.send && transport.send ? transport.send(m) : seeder(ctx)(m);

    it(
      "verify() reports ok",
      async (ctx) => {
        group(ctx, "verify");
        const report = await transport.verify();
        const failed = report.checks
          .filter((c) => !c.ok)
          .map((c) => `${c.name}: ${c.error?.message ?? c.detail}`);
        expect(failed, "failed checks").toEqual([]);
        expect(report.ok).toBe(true);
        expect(report.checks.length).toBeGreaterThan(0);
      },
      testTimeout,
    );

    it(
      "a sent message arrives in the recipient's Inbox exactly once",
      async (ctx) => {
        group(ctx, "send");
        if (!transport.capabilities.send) ctx.skip("capabilities.send is false");
        const look = reader(ctx);
        const subject = `send ${tag}`;
        const result = await transport.send!({ to, subject, text: "conformance: send" });
        expect(result.messageId).toMatch(/^<[^<>\s]+@[^<>\s]+>$/);
        await waitFor(
          `"${subject}" in the Inbox`,
          () => look.find(subject),
          (l) => l.length > 0,
          wait,
        );
        // A duplicate would land right behind the first copy: look again after a pause.
        await new Promise((resolve) => setTimeout(resolve, Math.min(2000, timeoutMs / 4)));
        expect(await look.find(subject)).toHaveLength(1);
      },
      testTimeout,
    );

    it(
      "folders include Inbox and Sent Items",
      async (ctx) => {
        group(ctx, "folders");
        if (!transport.capabilities.folders || !transport.listFolders)
          ctx.skip("capabilities.folders is false");
        const folders = await transport.listFolders!();
        const inbox = folders.find((f) => f.specialUse === "inbox" || /^inbox$/i.test(f.path));
        const sent = folders.find((f) => f.specialUse === "sent" || /^sent( items)?$/i.test(f.path));
        expect(inbox, `folders: ${folders.map((f) => f.path).join(", ")}`).toBeDefined();
        expect(sent, `folders: ${folders.map((f) => f.path).join(", ")}`).toBeDefined();
        expect(new Set(folders.map((f) => f.id)).size).toBe(folders.length);
      },
      testTimeout,
    );

    it(
      `paging yields every message exactly once (${seedCount} messages, pages of ${pageSize})`,
      async (ctx) => {
        group(ctx, "paging");
        if (!transport.capabilities.read || !transport.listMessages) ctx.skip("capabilities.read is false");
        const seed = seeder(ctx);
        const prefix = `page ${tag}`;
        for (let i = 0; i < seedCount; i++)
          await seed({ to, subject: `${prefix} #${i}`, text: `message ${i}` });
        const since = new Date(Date.now() - 10 * 60_000);
        const list = async () => {
          const seen: string[] = [];
          const subjects: string[] = [];
          for await (const m of transport.listMessages!({ folder: "inbox", pageSize, since })) {
            seen.push(m.id);
            if (m.subject.startsWith(prefix)) subjects.push(m.subject);
          }
          return { seen, subjects };
        };
        const { seen, subjects } = await waitFor(
          `${seedCount} seeded messages to be listed`,
          list,
          (r) => r.subjects.length >= seedCount,
          wait,
        );
        expect(new Set(seen).size, "an id came twice").toBe(seen.length);
        expect([...subjects].sort()).toEqual(
          Array.from({ length: seedCount }, (_, i) => `${prefix} #${i}`).sort(),
        );
      },
      testTimeout,
    );

    it(
      "a fetched message has the body and byte-identical attachments",
      async (ctx) => {
        group(ctx, "content");
        if (!transport.capabilities.read && !transport.capabilities.send)
          ctx.skip("the transport neither reads nor sends");
        if (!transport.capabilities.read) reader(ctx);
        const subject = `content ${tag}`;
        const binary = randomContent(150_000);
        const small = randomContent(1_000);
        const marker = `body-marker-${tag}`;
        await deliver(ctx, {
          to,
          subject,
          text: `First line\nSecond line with ${marker}\n`,
          attachments: [
            { filename: "random.bin", content: binary, contentType: "application/octet-stream" },
            { filename: "small.dat", content: small, contentType: "application/octet-stream" },
            { filename: "notes.txt", content: "plain text attachment ✓\n", contentType: "text/plain" },
          ],
        });
        const message = await receive(ctx, subject);
        expect(bodyText(message)).toContain(marker);
        const byName = new Map((message.attachments ?? []).map((a) => [a.filename, a.content]));
        expect([...byName.keys()].sort()).toEqual(["notes.txt", "random.bin", "small.dat"]);
        expect(bytesEqual(byName.get("random.bin")!, binary), "random.bin differs").toBe(true);
        expect(bytesEqual(byName.get("small.dat")!, small), "small.dat differs").toBe(true);
        expect(Buffer.from(byName.get("notes.txt")!).toString("utf8")).toBe("plain text attachment ✓\n");
      },
      testTimeout,
    );

    it(
      "Unicode subjects and display names survive",
      async (ctx) => {
        group(ctx, "unicode");
        if (!transport.capabilities.read && !transport.capabilities.send)
          ctx.skip("the transport neither reads nor sends");
        if (!transport.capabilities.read) reader(ctx);
        const subject = `${UNICODE_SUBJECT} ${tag}`;
        await deliver(ctx, {
          to: { name: UNICODE_NAME, address: to },
          subject,
          text: "Unicode: Grüße, 報告, ✓",
        });
        const message = await receive(ctx, subject);
        expect(message.subject).toBe(subject);
        const recipient = message.to?.find((a) => a.address.toLowerCase() === to.toLowerCase());
        expect(recipient?.name).toBe(UNICODE_NAME);
        expect(bodyText(message)).toContain("Grüße, 報告, ✓");
      },
      testTimeout,
    );

    it(
      "watch sees a new message",
      async (ctx) => {
        group(ctx, "watch");
        if (!transport.capabilities.watch || !transport.watch) ctx.skip("capabilities.watch is false");
        const seed = seeder(ctx);
        const subject = `watch ${tag}`;
        const controller = new AbortController();
        const events: MailEvent[] = [];
        let failure: unknown;
        const pump = (async () => {
          try {
            for await (const event of transport.watch!({ folder: "inbox" }, { signal: controller.signal })) {
              events.push(event);
              if (event.type === "created" && event.message.subject === subject) return;
            }
          } catch (error) {
            if (!controller.signal.aborted) failure = error;
          }
        })();
        try {
          await new Promise((resolve) => setTimeout(resolve, watchSettleMs));
          await seed({ to, subject, text: "conformance: watch" });
          await waitFor(
            `a "created" event for "${subject}"`,
            async () => {
              if (failure) throw failure;
              return events;
            },
            (l) => l.some((e) => e.type === "created" && e.message.subject === subject),
            wait,
          );
        } finally {
          controller.abort();
          await Promise.race([pump, new Promise((resolve) => setTimeout(resolve, timeoutMs))]);
        }
        expect(failure).toBeUndefined();
      },
      testTimeout,
    );

    registerOperationTests({
      transport: () => transport,
      group,
      seeder,
      tag,
      to,
      wait,
      testTimeout,
    });

    it(
      "an operation the transport does not support fails with NOT_SUPPORTED",
      async (ctx) => {
        group(ctx, "not-supported");
        const probes = unsupportedProbes(transport);
        if (probes.length === 0) ctx.skip("the transport supports every operation");
        for (const probe of probes) {
          const outcome = await probe.run().then(
            () => undefined,
            (error: unknown) => error,
          );
          expect(
            isM365MailError(outcome, "NOT_SUPPORTED"),
            `${probe.name} should fail with NOT_SUPPORTED, got ${String(outcome)}`,
          ).toBe(true);
        }
      },
      testTimeout,
    );
  });
}

/** Calls for every capability the transport lacks: present methods must throw NOT_SUPPORTED. */
function unsupportedProbes(t: Transport): { name: string; run: () => Promise<unknown> }[] {
  const probes: { name: string; run: () => Promise<unknown> }[] = [];
  const first = (iterable: AsyncIterable<unknown>) => iterable[Symbol.asyncIterator]().next();
  const message: OutgoingMessage = { to: "nobody@example.com", subject: "not supported", text: "x" };
  if (!t.capabilities.send) {
    if (t.send) probes.push({ name: "send()", run: () => t.send!(message) });
    // The registry refuses a send through a transport that cannot send.
    const auth: TokenProvider = {
      kind: "token-provider",
      name: "conformance",
      username: "nobody@example.com",
      getAccessToken: () => Promise.reject(new Error("not used")),
    };
    probes.push({
      name: "mailbox.send(via)",
      run: () => createMailbox({ auth, transports: [t] }).send(message, { via: t.name }),
    });
  }
  if (!t.capabilities.read) {
    if (t.listMessages) probes.push({ name: "listMessages()", run: () => first(t.listMessages!()) });
    if (t.getMessage) probes.push({ name: "getMessage()", run: () => t.getMessage!("1") });
  }
  if (!t.capabilities.folders && t.listFolders)
    probes.push({ name: "listFolders()", run: () => t.listFolders!() });
  if (!t.capabilities.watch && t.watch) probes.push({ name: "watch()", run: () => first(t.watch!()) });
  probes.push(...unsupportedOperationProbes(t));
  if (!t.capabilities.calendar && t.listEvents) {
    probes.push({
      name: "listEvents()",
      run: () => first(t.listEvents!({ start: new Date(), end: new Date() })),
    });
  }
  return probes;
}
