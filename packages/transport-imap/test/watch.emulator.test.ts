import { randomBytes } from "node:crypto";
import type { Logger, MailEvent } from "@m365-mail/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  deliver,
  dovecotMissing,
  emulatorProvider,
  type ImapEmulator,
  startImapEmulator,
  transportFor,
} from "./emulator-helpers.js";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Collects watch events in the background until stopped. */
function pump(iterable: AsyncIterable<MailEvent>) {
  const events: MailEvent[] = [];
  let failure: unknown;
  const iterator = iterable[Symbol.asyncIterator]();
  const done = (async () => {
    try {
      for (;;) {
        const next = await iterator.next();
        if (next.done) return;
        events.push(next.value);
      }
    } catch (error) {
      failure = error;
    }
  })();
  return {
    events,
    done,
    get failure() {
      return failure;
    },
    subjects: () => events.flatMap((e) => (e.type === "created" ? [e.message.subject] : [])),
    stop: () => iterator.return?.(),
  };
}

async function until(what: string, check: () => boolean, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

function recordingLogger(lines: string[]): Logger {
  const sink = (message: string) => lines.push(message);
  return { debug() {}, info: sink, warn: sink, error: sink };
}

describe.skipIf(dovecotMissing)("watch() (emulator + Dovecot)", () => {
  let env: ImapEmulator;
  beforeAll(async () => {
    env = await startImapEmulator();
  });
  afterAll(() => env?.cleanup());

  it("reports each of 50 messages exactly once through 3 forced token expiries", async () => {
    const user = "alice@contoso.com";
    const tag = randomBytes(4).toString("hex");
    // Tokens live 6 s: the emulator ends each session when its own token expires, as Exchange does with
    // `BYE Session invalidated - AccessTokenExpired`. The watcher is told to renew only 2 s after that,
    // so that every session really is ended by the server (a watcher that renews ahead is never kicked).
    env.emulator.admin.setTokenLifetime(6);
    const kicksBefore = env.emulator.admin.counts()["dovecot.kick.token-expired"] ?? 0;
    const lines: string[] = [];
    const imap = transportFor(env, emulatorProvider(env.emulator, user), {
      logger: recordingLogger(lines),
      renewBeforeExpirySeconds: -2,
    });
    const watcher = pump(imap.watch({ folder: "inbox" }));
    try {
      await sleep(1500);
      const started = Date.now();
      for (let i = 0; i < 50; i++) {
        await deliver(env, user, { to: user, subject: `w ${tag} ${i}` }, "inbox", { seen: true });
        await sleep(400);
      }
      await until(
        "50 events",
        () => watcher.subjects().filter((s) => s.includes(tag)).length >= 50 || !!watcher.failure,
        30_000,
      );
      await sleep(1000); // anything reported twice would show up now
      const kicks = (env.emulator.admin.counts()["dovecot.kick.token-expired"] ?? 0) - kicksBefore;
      expect(String(watcher.failure ?? "")).toBe("");
      expect(Date.now() - started).toBeGreaterThan(18_000);
      expect(kicks).toBeGreaterThanOrEqual(3);
      const subjects = watcher.subjects().filter((s) => s.includes(tag));
      expect(subjects.sort()).toEqual(Array.from({ length: 50 }, (_, i) => `w ${tag} ${i}`).sort());
      expect(lines.filter((l) => l.includes("reconnecting")).length).toBeGreaterThanOrEqual(3);
    } finally {
      env.emulator.admin.setTokenLifetime(3600);
      await watcher.stop();
      await imap.close();
    }
  }, 90_000);

  it("survives revoked tokens (sessions ended, refresh token gone) without losing mail", async () => {
    const user = "support@contoso.com";
    const tag = randomBytes(4).toString("hex");
    const imap = transportFor(env, emulatorProvider(env.emulator, user));
    const watcher = pump(imap.watch());
    try {
      await sleep(1000);
      for (let i = 0; i < 6; i++) {
        await deliver(env, user, { to: user, subject: `r ${tag} ${i}` }, "inbox", { seen: true });
        // Revocations a few seconds apart, as in life: back-to-back ones can revoke the token the
        // watcher's one forced refresh just fetched, which then (rightly) ends the watch.
        if (i % 2 === 1) env.emulator.admin.revokeTokens(user);
        await sleep(i % 2 === 1 ? 1500 : 300);
      }
      await until(
        "6 events",
        () => watcher.subjects().filter((s) => s.includes(tag)).length >= 6 || !!watcher.failure,
        20_000,
      );
      await sleep(500);
      expect(String(watcher.failure ?? "")).toBe("");
      expect(
        watcher
          .subjects()
          .filter((s) => s.includes(tag))
          .sort(),
      ).toEqual(Array.from({ length: 6 }, (_, i) => `r ${tag} ${i}`));
    } finally {
      await watcher.stop();
      await imap.close();
    }
  }, 60_000);

  it("stops and logs out when the loop returns, the signal aborts, or the transport closes", async () => {
    // A user no other test signs in as: `kick` then tells whether a session is still open.
    const user = "nosmtp@contoso.com";
    const imap = transportFor(env, emulatorProvider(env.emulator, user));
    const noSessionLeft = async () => {
      await sleep(300); // Dovecot's imap process exits just after answering LOGOUT
      return !(await env.dovecot.kick(user));
    };
    try {
      // return() while waiting for mail (no event pending) ends the iteration promptly.
      const byReturn = pump(imap.watch());
      await sleep(800);
      const t0 = Date.now();
      await byReturn.stop();
      await byReturn.done;
      expect(Date.now() - t0).toBeLessThan(3000);
      expect(await noSessionLeft()).toBe(true);

      const controller = new AbortController();
      const bySignal = pump(imap.watch({}, { signal: controller.signal }));
      await sleep(800);
      controller.abort();
      await bySignal.done;
      expect(bySignal.failure).toBeUndefined();
      expect(await noSessionLeft()).toBe(true);

      const byClose = pump(imap.watch());
      await sleep(800);
      // While watching there is a session (the check above can fail); the watcher re-opens it after the kick.
      expect(await env.dovecot.kick(user)).toBe(true);
      await sleep(1500);
      await imap.close();
      await byClose.done;
      expect(byClose.failure).toBeUndefined();
      expect(await noSessionLeft()).toBe(true);
    } finally {
      await imap.close();
    }
  }, 30_000);

  it("re-baselines after a UIDVALIDITY change: new mail reported, nothing twice", async () => {
    const user = "support@contoso.com";
    const tag = randomBytes(4).toString("hex");
    const folder = `Projects ${tag}`;
    await env.store.createFolder(user, folder);
    const imap = transportFor(env, emulatorProvider(env.emulator, user));
    const watcher = pump(imap.watch({ folder }));
    try {
      await sleep(1000);
      const first = Buffer.from(`Message-ID: <first-${tag}@x>\r\nSubject: first ${tag}\r\n\r\nx\r\n`);
      await env.store.deliver(user, folder, first);
      await until("the first event", () => watcher.subjects().length >= 1, 10_000);
      // The folder is rebuilt: same name, new UIDVALIDITY, the old message back plus a new one.
      await env.store.deleteFolder(user, folder);
      await env.store.createFolder(user, folder);
      await env.store.deliver(user, folder, first);
      await env.store.deliver(
        user,
        folder,
        Buffer.from(`Message-ID: <second-${tag}@x>\r\nSubject: second ${tag}\r\n\r\nx\r\n`),
      );
      await until("the second event", () => watcher.subjects().length >= 2 || !!watcher.failure, 20_000);
      await sleep(1000);
      expect(String(watcher.failure ?? "")).toBe("");
      expect(watcher.subjects()).toEqual([`first ${tag}`, `second ${tag}`]);
    } finally {
      await watcher.stop();
      await imap.close();
    }
  }, 60_000);
});
