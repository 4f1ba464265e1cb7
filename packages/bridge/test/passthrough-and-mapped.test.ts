/**
 * Regression (audit, token-cache collision): a catch-all passthrough account and a scanner mapped to one
 * of its users — the documented set-up — shared token-cache entries for that user. A person's passthrough
 * login sealed them ("pk1.…"), and the scanner's next sign-in failed (SMTP 454, IMAP NO [UNAVAILABLE],
 * spool deliveries "Unexpected token 'p' … is not valid JSON"); the other order had the passthrough grant
 * overwrite the scanner's entry. Both kinds now live side by side, in every kind of token cache.
 */
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { dovecotPart, graphPart, smtpPart, startTestEmulator, type TestEmulator } from "@m365-mail/emulator";
import { needs, startRedis, type TestRedis } from "@m365-mail/test-helpers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Bridge, hashSecret } from "../src/index.js";
import {
  collectingLogger,
  DEMO_PASSWORD,
  pythonImapLogin,
  pythonSmtp,
  smtpPort,
  startTestBridge,
  textMessage,
} from "./bridge-env.js";
import { dovecotMissing } from "./relay-helpers.js";

const hasRedis = needs("redis");
const secret = `scanner-${randomBytes(6).toString("hex")}`;

let emulator: TestEmulator;
let redis: TestRedis | undefined;
let keyFile: string;
let passwordFile: string;
let secretHash: string;

beforeAll(async () => {
  emulator = await startTestEmulator({
    prefix: "m365-bridge-passthrough-mapped-",
    parts: [graphPart(), smtpPart(), ...(dovecotMissing ? [] : [dovecotPart()])],
  });
  keyFile = join(emulator.dataDir, "token-cache.key");
  await writeFile(keyFile, randomBytes(32).toString("base64"), { mode: 0o600 });
  // support@ and alice@ share the demo password: one file serves both scanners.
  passwordFile = join(emulator.dataDir, "m365.password");
  await writeFile(passwordFile, `${DEMO_PASSWORD}\n`, { mode: 0o600 });
  secretHash = await hashSecret(secret);
  if (hasRedis) redis = await startRedis({ prefix: "m365-bridge-passthrough-mapped-" });
});
afterAll(async () => {
  await emulator?.stop();
  await redis?.stop();
});

type CacheCase = [string, () => Record<string, unknown>];
const tokenCaches: CacheCase[] = [
  ["memory", () => ({ type: "memory" })],
  ["file", () => ({ type: "file", path: join(emulator.dataDir, "tokens.json"), keyFile })],
];
if (hasRedis) tokenCaches.push(["redis", () => ({ type: "redis", url: redis!.url, keyFile })]);

describe.each(tokenCaches)(
  "a passthrough person and a mapped scanner of the same user (%s token cache)",
  (_, tokenCache) => {
    let bridge: Bridge;
    const logger = collectingLogger();
    const mapped = (login: string, username: string) => ({
      name: login,
      answer: "sync",
      credentials: { mode: "mapped", login, secretHash, username, passwordFile },
    });

    beforeAll(async () => {
      bridge = await startTestBridge(
        emulator,
        {
          listeners: [
            { protocol: "smtp", host: "127.0.0.1", port: 0, security: "plain" },
            ...(dovecotMissing ? [] : [{ protocol: "imap", host: "127.0.0.1", port: 0, security: "plain" }]),
          ],
          tokenCache: tokenCache(),
          accounts: [
            { credentials: { mode: "passthrough", domain: "contoso.com" } },
            mapped("scanner", "support@contoso.com"),
            mapped("scanner2", "alice@contoso.com"),
          ],
        } as Parameters<typeof startTestBridge>[1],
        logger,
      );
    });
    afterAll(async () => {
      await bridge?.close({ drainMs: 0 });
    });

    const send = (username: string, password: string, from: string) =>
      pythonSmtp({
        port: smtpPort(bridge),
        username,
        password,
        from,
        to: ["shared@contoso.com"],
        message: textMessage({ from, to: "shared@contoso.com", subject: `as ${username}` }),
      });
    const imap = async (username: string, password: string) =>
      dovecotMissing
        ? "OK"
        : pythonImapLogin(bridge.addresses.find((a) => a.protocol === "imap")!.port, username, password);

    it("the person logs in first: the scanner then sends (sync) and reads over IMAP", async () => {
      expect((await send("support@contoso.com", DEMO_PASSWORD, "support@contoso.com")).stdout.trim()).toBe(
        "OK",
      );
      expect((await send("scanner", secret, "support@contoso.com")).stdout.trim()).toBe("OK");
      expect(await imap("scanner", secret)).toBe("OK");
      // And the person's own sign-in is still there, for both protocols.
      expect(await imap("support@contoso.com", DEMO_PASSWORD)).toBe("OK");
      expect((await send("support@contoso.com", DEMO_PASSWORD, "support@contoso.com")).stdout.trim()).toBe(
        "OK",
      );
      expect(bridge.status().signInProblems).toEqual([]);
    });

    it("the scanner signs in first: the person's login leaves its sign-in usable", async () => {
      expect((await send("scanner2", secret, "alice@contoso.com")).stdout.trim()).toBe("OK");
      expect((await send("alice@contoso.com", DEMO_PASSWORD, "alice@contoso.com")).stdout.trim()).toBe("OK");
      expect(await imap("alice@contoso.com", DEMO_PASSWORD)).toBe("OK");
      expect((await send("scanner2", secret, "alice@contoso.com")).stdout.trim()).toBe("OK");
      expect(await imap("scanner2", secret)).toBe("OK");
      expect(bridge.status().signInProblems).toEqual([]);
      expect(logger.lines.filter((l) => /msal failed|not valid JSON|SyntaxError/.test(l))).toEqual([]);
    });
  },
);
