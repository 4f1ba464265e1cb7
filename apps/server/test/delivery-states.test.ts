import { connect, createServer, type Server } from "node:net";
import { type Logger, silentLogger } from "@m365-mail/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateApiKey, hashApiKey } from "../src/api-keys.js";
import { loadServerConfig } from "../src/config.js";
import { sentItemsReader } from "../src/outbox-setup.js";
import { startServer } from "../src/start-server.js";
import {
  ALICE,
  client,
  emulatorEnv,
  metric,
  metricsOf,
  startTestEmulator,
  startTestServer,
  subjectsIn,
  type TestEmulator,
  waitFor,
} from "./helpers.js";

// Issue 12, items 1 and 2: what the outbox says about a message is what happened to it.

let emu: TestEmulator;
beforeAll(async () => {
  emu = await startTestEmulator();
});
afterAll(async () => {
  await emu?.stop();
});

interface Entry {
  id: string;
  state: string;
  attempts: number;
  transport?: string;
  error?: { code: string; message: string; hint?: string };
}

type Call = ReturnType<typeof client>;

async function post(call: Call, subject: string): Promise<Entry> {
  const res = await call("/v1/messages", {
    method: "POST",
    body: JSON.stringify({ to: ALICE, subject, text: subject, via: "graph" }),
  });
  expect(res.status).toBe(202);
  return (await res.json()) as Entry;
}

const entryOf = async (call: Call, id: string) => (await (await call(`/v1/outbox/${id}`)).json()) as Entry;

async function until(call: Call, id: string, test: (e: Entry) => boolean, what: string, timeoutMs = 30_000) {
  let last: Entry | undefined;
  try {
    return await waitFor(
      async () => {
        last = await entryOf(call, id);
        return test(last) ? last : undefined;
      },
      timeoutMs,
      what,
    );
  } catch (error) {
    throw new Error(`${(error as Error).message}; last seen: ${JSON.stringify(last)}`);
  }
}

const inAliceInbox = async (subject: string) =>
  (await subjectsIn(emu.dataDir, ALICE, "inbox")).filter((s) => s === subject).length;

/** A closed port that can be opened later as a TCP relay to `target`. */
async function laterRelay(target: number) {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const port = (probe.address() as { port: number }).port;
  await new Promise((resolve) => probe.close(resolve));
  let relay: Server | undefined;
  return {
    port,
    async open() {
      relay = createServer((socket) => {
        const upstream = connect(target, "127.0.0.1");
        socket.pipe(upstream).pipe(socket);
        socket.on("error", () => upstream.destroy());
        upstream.on("error", () => socket.destroy());
      });
      await new Promise<void>((resolve) => relay!.listen(port, "127.0.0.1", resolve));
    },
    close: () => relay?.close(),
  };
}

describe("a message whose fate cannot be decided is 'uncertain' (item 2)", () => {
  it("copy in Sent Items within the grace period: sent, no resend; never: uncertain until an operator decides", {
    timeout: 90_000,
  }, async () => {
    const { url, key, stop } = await startTestServer(emu.emulator, {
      TRANSPORTS: "graph",
      OUTBOX_SENT_ITEMS_GRACE_MS: "3000",
    });
    const call = client(url, key);
    const admin = emu.emulator.admin;
    const lostAnswer = () =>
      admin.armFault({ target: "graph", path: "/sendMail", kind: "status504", after: true });
    try {
      // The grace period counts from the attempt's start, sign-in included: sign in first, so that
      // each sendMail below follows its attempt's start closely.
      const warm = await post(call, "warm-up");
      await until(call, warm.id, (e) => e.state === "sent", "the warm-up send");
      // Graph delivers, the answer is lost, the Sent Items copy comes 800 ms late: within the grace.
      lostAnswer();
      admin.armFault({ target: "sentitems", kind: "lateSentItems", delayMs: 800 });
      const late = await post(call, "late copy");
      const sent = await until(call, late.id, (e) => e.state === "sent", "the late copy to be found");
      expect(sent).toMatchObject({ transport: "sent-items", attempts: 2 });
      expect(await inAliceInbox("late copy")).toBe(1);

      // The copy never appears: no resend, no 'failed' — uncertain, payload kept.
      lostAnswer();
      admin.armFault({ target: "sentitems", kind: "lateSentItems" });
      const lost = await post(call, "never filed");
      const uncertain = await until(call, lost.id, (e) => e.state === "uncertain", "uncertain");
      expect(uncertain.error).toMatchObject({
        code: "NOT_FOUND",
        hint: expect.stringContaining("retry or discard"),
      });
      expect(await inAliceInbox("never filed")).toBe(1);
      const metrics = await metricsOf(url, key);
      expect(metric(metrics, "m365_outbox_messages", 'state="uncertain"')).toBe(1);
      expect(
        ((await (await call("/v1/outbox?state=uncertain")).json()) as Entry[]).map((e: Entry) => e.id),
      ).toEqual([lost.id]);

      // The operator looked, found it in Alice's inbox: discard. A second decision is refused.
      const discard = await call(`/v1/outbox/${lost.id}/resolve`, {
        method: "POST",
        body: JSON.stringify({ action: "discard" }),
      });
      expect(discard.status).toBe(200);
      expect(await discard.json()).toMatchObject({ state: "failed", error: { code: "DISCARDED" } });
      const again = await call(`/v1/outbox/${lost.id}/resolve`, {
        method: "POST",
        body: JSON.stringify({ action: "retry" }),
      });
      expect(again.status).toBe(409);
      const unknown = await call("/v1/outbox/graph.nope/resolve", {
        method: "POST",
        body: JSON.stringify({ action: "retry" }),
      });
      expect(unknown.status).toBe(404);
      const bad = await call(`/v1/outbox/${lost.id}/resolve`, {
        method: "POST",
        body: JSON.stringify({ action: "maybe" }),
      });
      expect(bad.status).toBe(400);

      // Another lost one, which the operator sends again: now it is in the inbox twice, by decision.
      lostAnswer();
      admin.armFault({ target: "sentitems", kind: "lateSentItems" });
      const retried = await post(call, "sent again by hand");
      await until(call, retried.id, (e) => e.state === "uncertain", "uncertain");
      const retry = await call(`/v1/outbox/${retried.id}/resolve`, {
        method: "POST",
        body: JSON.stringify({ action: "retry" }),
      });
      expect(retry.status).toBe(200);
      await until(call, retried.id, (e) => e.state === "sent", "the operator's resend");
      expect(await inAliceInbox("sent again by hand")).toBe(2);
      const after = await metricsOf(url, key);
      expect(metric(after, "m365_outbox_messages", 'state="uncertain"')).toBe(0);
    } finally {
      admin.clearFaults();
      await stop();
    }
  });

  it("the OpenAPI document describes the resolve endpoint and the uncertain state", async () => {
    const { url, key, stop } = await startTestServer(emu.emulator, { TRANSPORTS: "graph" });
    try {
      const doc = JSON.stringify(await (await client(url, key)("/openapi.json")).json());
      expect(doc).toContain("/v1/outbox/{id}/resolve");
      expect(doc).toContain('"uncertain"');
    } finally {
      await stop();
    }
  });
});

describe("a send that cannot have left is retried or failed, never uncertain (item 1)", () => {
  const graphPort = () => Number(new URL(emu.emulator.cloud.graphOrigin!).port);
  const entraPort = () => Number(new URL(emu.emulator.authorityHost).port);

  it.each([
    ["the sign-in authority", "M365_AUTHORITY_HOST", entraPort],
    ["Graph", "M365_GRAPH_ORIGIN", graphPort],
  ] as const)(
    "%s refuses connections at first: the outbox retries, then sends once",
    {
      timeout: 90_000,
    },
    async (_what, variable, target) => {
      const relay = await laterRelay(target());
      const subject = `refused at first ${variable}`;
      const { url, key, stop } = await startTestServer(emu.emulator, {
        TRANSPORTS: "graph",
        OUTBOX_MAX_ATTEMPTS: "50",
        [variable]: `https://127.0.0.1:${relay.port}`,
      });
      const call = client(url, key);
      try {
        const { id } = await post(call, subject);
        const retrying = await until(
          call,
          id,
          (e) => e.attempts >= 1 && e.error !== undefined,
          "a failed attempt",
        );
        expect(retrying.state).not.toBe("uncertain");
        expect(retrying.error?.code).toBe("CONNECTION_FAILED");
        await relay.open();
        const sent = await until(
          call,
          id,
          (e) => e.state === "sent",
          "the send after the relay opened",
          60_000,
        );
        expect(sent.transport).toBe("graph");
        expect(await inAliceInbox(subject)).toBe(1);
      } finally {
        await stop();
        relay.close();
      }
    },
  );

  it.each([
    [
      "an untrusted CA for the sign-in",
      { M365_CA_FILE: "/etc/ssl/certs/ca-certificates.crt" },
      "CONNECTION_FAILED",
    ],
    ["a wrong password (AADSTS50126)", { M365_PASSWORD: "wrong-password" }, "AUTH_FAILED"],
  ] as const)(
    "%s: failed after one attempt, with its code",
    { timeout: 60_000 },
    async (_what, env, code) => {
      const { url, key, stop } = await startTestServer(emu.emulator, { TRANSPORTS: "graph", ...env });
      const call = client(url, key);
      try {
        const { id } = await post(call, `definite ${code}`);
        const failed = await until(
          call,
          id,
          (e) => e.state !== "queued" && e.state !== "sending",
          "a final state",
        );
        expect(failed).toMatchObject({ state: "failed", attempts: 1, error: { code } });
      } finally {
        await stop();
      }
    },
  );

  it("a failed TLS handshake with Graph: failed after one attempt", { timeout: 60_000 }, async () => {
    const plain = createServer((socket) => socket.end("HTTP/1.1 400 Bad Request\r\n\r\n"));
    await new Promise<void>((resolve) => plain.listen(0, "127.0.0.1", resolve));
    const port = (plain.address() as { port: number }).port;
    const { url, key, stop } = await startTestServer(emu.emulator, {
      TRANSPORTS: "graph",
      M365_GRAPH_ORIGIN: `https://127.0.0.1:${port}`,
    });
    const call = client(url, key);
    try {
      const { id } = await post(call, "tls handshake");
      const failed = await until(
        call,
        id,
        (e) => e.state !== "queued" && e.state !== "sending",
        "a final state",
      );
      expect(failed).toMatchObject({ state: "failed", attempts: 1, error: { code: "CONNECTION_FAILED" } });
      expect(failed.error?.message).toMatch(/TLS/);
    } finally {
      await stop();
      plain.close();
    }
  });
});

describe("Sent Items reader", () => {
  it("Graph first, else IMAP (Exchange files SMTP-sent mail in Sent Items too), else none", () => {
    expect(sentItemsReader(["graph", "smtp", "imap"])).toBe("graph");
    expect(sentItemsReader(["smtp", "imap"])).toBe("imap");
    expect(sentItemsReader(["smtp"])).toBeUndefined();
  });

  it("with SMTP alone the server warns at start that resends cannot be checked", async () => {
    const warnings: string[] = [];
    const logger: Logger = { ...silentLogger, warn: (message) => warnings.push(message) };
    const key = generateApiKey();
    const config = loadServerConfig(
      {
        ...emulatorEnv(emu.emulator),
        PORT: "0",
        TRANSPORTS: "smtp",
        WATCH_VIA: "off",
        OUTBOX_PATH: ":memory:",
        API_KEYS: `test:${hashApiKey(key)}`,
      },
      [],
    );
    const server = await startServer({ config, m365: config.m365!, logger });
    try {
      expect(warnings.join("\n")).toMatch(/no transport can read Sent Items.*uncertain/);
    } finally {
      await server.close();
    }
  });
});
