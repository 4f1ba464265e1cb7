import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ALICE,
  client,
  startTestEmulator,
  startTestServer,
  subjectsIn,
  type TestEmulator,
  USER,
  waitFor,
} from "./helpers.js";

let emu: TestEmulator;
let srv: Awaited<ReturnType<typeof startTestServer>>;
let api: ReturnType<typeof client>;

beforeAll(async () => {
  emu = await startTestEmulator();
  srv = await startTestServer(emu.emulator, { MAX_ATTACHMENT_BYTES: String(64 * 1024) });
  api = client(srv.url, srv.key);
});
afterAll(async () => {
  await srv?.stop();
  await emu?.stop();
});

const outboxCount = async () => {
  const c = await srv.server.outbox.counts();
  return c.queued + c.sending + c.sent + c.failed;
};

const post = (body: unknown, headers: Record<string, string> = {}) =>
  api("/v1/messages", { method: "POST", body: JSON.stringify(body), headers });

describe("access", () => {
  it("answers 401 without detail for a missing, wrong or malformed key", async () => {
    const variants: Array<Record<string, string>> = [
      {},
      { authorization: "Bearer m365_wrong" },
      { authorization: `Basic ${srv.key}` },
      { "x-api-key": "nope" },
    ];
    for (const headers of variants) {
      const res = await fetch(`${srv.url}/v1/outbox`, { headers });
      expect(res.status).toBe(401);
      expect(await res.json()).toEqual({ error: { code: "UNAUTHORIZED", message: "unauthorized" } });
    }
    const before = await outboxCount();
    const res = await fetch(`${srv.url}/v1/messages`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "Bearer m365_wrong" },
      body: JSON.stringify({ to: ALICE, subject: "x", text: "x" }),
    });
    expect(res.status).toBe(401);
    expect(await outboxCount()).toBe(before);
  });

  it("accepts the key as Bearer or X-API-Key; /metrics needs it too; CORS is off", async () => {
    expect((await fetch(`${srv.url}/v1/outbox`, { headers: { "x-api-key": srv.key } })).status).toBe(200);
    expect((await fetch(`${srv.url}/metrics`)).status).toBe(401);
    const metrics = await api("/metrics");
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toContain("m365_outbox_messages");
    const preflight = await fetch(`${srv.url}/v1/messages`, {
      method: "OPTIONS",
      headers: { origin: "https://evil.example", "access-control-request-method": "POST" },
    });
    expect(preflight.headers.get("access-control-allow-origin")).toBeNull();
  });
});

describe("bad input never reaches the outbox", () => {
  const cases: Array<[string, unknown, RegExp]> = [
    ["an invalid address", { to: "not-an-address", subject: "s", text: "t" }, /not a valid e-mail address/],
    [
      "an invalid cc address",
      { to: ALICE, cc: ["ok@contoso.com", "bad@"], text: "t" },
      /"bad@" is not a valid/,
    ],
    [
      "CR/LF in the subject",
      { to: ALICE, subject: "hi\r\nBcc: victim@example.com", text: "t" },
      /subject contains a line break/,
    ],
    [
      "CR/LF in a header",
      { to: ALICE, text: "t", headers: { "X-Ticket": "1\r\nBcc: x@y.z" } },
      /header "X-Ticket" is malformed/,
    ],
    [
      "CR/LF in a display name",
      { to: "Eve\r\nBcc: x@y.z <eve@contoso.com>", text: "t" },
      /not a valid e-mail address/,
    ],
    ["an unknown field", { to: ALICE, text: "t", priority: "high" }, /unknown field "priority"/],
    [
      "an unknown attachment field",
      { to: ALICE, text: "t", attachments: [{ filename: "a", content: "", path: "/etc/passwd" }] },
      /unknown field "path"/,
    ],
    ["a wrong type", { to: 42, text: "t" }, /body\.to/],
    ["no recipient", { subject: "s", text: "t" }, /no recipients/],
    [
      "bad base64",
      { to: ALICE, text: "t", attachments: [{ filename: "a.bin", content: "%%%%" }] },
      /not valid base64/,
    ],
    [
      "an oversize attachment",
      {
        to: ALICE,
        text: "t",
        attachments: [{ filename: "big.bin", content: Buffer.alloc(70 * 1024).toString("base64") }],
      },
      /over this server's limit of 65536/,
    ],
    [
      "an unknown transport",
      { to: ALICE, text: "t", via: "pigeon" },
      /body\.via must be equal to one of the allowed values/,
    ],
  ];
  for (const [what, body, message] of cases) {
    it(`400 for ${what}`, async () => {
      const before = await outboxCount();
      const res = await post(body);
      expect(res.status).toBe(400);
      const answer = (await res.json()) as { error: { code: string; message: string } };
      expect(answer.error.message).toMatch(message);
      expect(await outboxCount()).toBe(before);
    });
  }

  it("400 for a body that is not JSON, 413 for one far over the limit", async () => {
    const before = await outboxCount();
    const notJson = await api("/v1/messages", {
      method: "POST",
      body: "{to:",
      headers: { "content-type": "application/json" },
    });
    expect(notJson.status).toBe(400);
    const huge = await post({ to: ALICE, text: "x".repeat(3 * 1024 * 1024) });
    expect(huge.status).toBe(413);
    expect(await outboxCount()).toBe(before);
  });
});

describe("sending through the outbox", () => {
  it("202 with an id and Message-ID; delivered once over Graph; status shows sent", async () => {
    const res = await post({
      to: ALICE,
      subject: "api graph send",
      text: "hello",
      attachments: [
        {
          filename: "note.txt",
          content: Buffer.from("attached").toString("base64"),
          contentType: "text/plain",
        },
      ],
    });
    expect(res.status).toBe(202);
    const entry = (await res.json()) as { id: string; state: string; messageId: string };
    expect(entry.state).toBe("queued");
    expect(entry.messageId).toMatch(/^<.+@contoso\.com>$/);
    expect(res.headers.get("location")).toBe(`/v1/outbox/${entry.id}`);
    const done = await waitFor(
      async () => {
        const s = (await (await api(`/v1/outbox/${entry.id}`)).json()) as {
          state: string;
          transport?: string;
        };
        return s.state === "sent" ? s : undefined;
      },
      20_000,
      "the message to be sent",
    );
    expect(done.transport).toBe("graph");
    expect(
      (await subjectsIn(emu.dataDir, ALICE, "inbox")).filter((s) => s === "api graph send"),
    ).toHaveLength(1);
  });

  it("via smtp goes over SMTP", async () => {
    const res = await post({ to: ALICE, subject: "api smtp send", text: "over smtp", via: "smtp" });
    const { id } = (await res.json()) as { id: string };
    const done = await waitFor(
      async () => {
        const s = (await (await api(`/v1/outbox/${id}`)).json()) as { state: string; transport?: string };
        return s.state === "sent" ? s : undefined;
      },
      20_000,
      "the SMTP send",
    );
    expect(done.transport).toBe("smtp");
    expect((await subjectsIn(emu.dataDir, ALICE, "inbox")).filter((s) => s === "api smtp send")).toHaveLength(
      1,
    );
  });

  it("auto falls back to SMTP when Graph refuses before submitting (Mail.Send not granted)", async () => {
    const app = emu.emulator.admin.directory().tenants[0]!.apps[0]!;
    const granted = app.grantedPermissions;
    emu.emulator.admin.updateApp(app.clientId, {
      grantedPermissions: { ...granted, graph: (granted.graph ?? []).filter((p) => p !== "Mail.Send") },
    });
    try {
      // Tokens carry the permissions of their grant: make the server get new ones.
      emu.emulator.admin.revokeTokens(USER);
      const res = await post({ to: ALICE, subject: "api auto fallback", text: "fallback" });
      const { id } = (await res.json()) as { id: string };
      const done = await waitFor(
        async () => {
          const s = (await (await api(`/v1/outbox/${id}`)).json()) as { state: string; transport?: string };
          return s.state === "sent" || s.state === "failed" ? s : undefined;
        },
        30_000,
        "the fallback send",
      );
      expect(done).toMatchObject({ state: "sent", transport: "smtp" });
    } finally {
      emu.emulator.admin.updateApp(app.clientId, { grantedPermissions: granted });
      emu.emulator.admin.revokeTokens(USER);
    }
  });

  it("an Idempotency-Key gives the same id and no second message; another body with it is a 409", async () => {
    const body = { to: ALICE, subject: "api idempotent", text: "once" };
    const headers = { "idempotency-key": "order-4711" };
    const first = (await (await post(body, headers)).json()) as { id: string };
    const before = await outboxCount();
    const again = await post(body, headers);
    expect(again.status).toBe(202);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(((await again.json()) as { id: string }).id).toBe(first.id);
    expect(await outboxCount()).toBe(before);
    const conflict = await post({ ...body, text: "twice" }, headers);
    expect(conflict.status).toBe(409);
    await waitFor(
      async () =>
        (await subjectsIn(emu.dataDir, ALICE, "inbox")).includes("api idempotent") ? true : undefined,
      20_000,
      "the idempotent message",
    );
    await new Promise((r) => setTimeout(r, 300));
    expect(
      (await subjectsIn(emu.dataDir, ALICE, "inbox")).filter((s) => s === "api idempotent"),
    ).toHaveLength(1);
  });

  it("a permanent refusal ends as failed with the code and hint", async () => {
    const res2 = await post({
      to: ALICE,
      from: "alice@contoso.com",
      subject: "send as alice",
      text: "x",
      via: "smtp",
    });
    const { id: id2 } = (await res2.json()) as { id: string };
    const refused = await waitFor(
      async () => {
        const s = (await (await api(`/v1/outbox/${id2}`)).json()) as {
          state: string;
          error?: { code: string; hint?: string };
        };
        return s.state === "failed" ? s : undefined;
      },
      20_000,
      "the SendAs refusal",
    );
    expect(refused.error?.code).toBe("SEND_AS_DENIED");
    expect(refused.error?.hint).toBeTruthy();
  });
});

describe("reading", () => {
  it("lists folders, messages, reads one with its attachment", async () => {
    await post({
      to: USER,
      subject: "to myself",
      text: "read me",
      attachments: [
        {
          filename: "data.csv",
          content: Buffer.from("a,b\n1,2\n").toString("base64"),
          contentType: "text/csv",
        },
      ],
    });
    const folders = (await (await api("/v1/folders")).json()) as Array<{ path: string; specialUse?: string }>;
    expect(folders.some((f) => f.specialUse === "inbox")).toBe(true);
    const found = await waitFor(
      async () => {
        const list = (await (await api("/v1/messages?folder=inbox&limit=10")).json()) as Array<{
          id: string;
          subject: string;
        }>;
        return list.find((m) => m.subject === "to myself");
      },
      20_000,
      "the message in the inbox",
    );
    const message = (await (await api(`/v1/messages/${encodeURIComponent(found.id)}`)).json()) as {
      text: string;
      attachments: Array<{ index: number; filename: string; size: number }>;
    };
    expect(message.text).toContain("read me");
    expect(message.attachments[0]).toMatchObject({ filename: "data.csv" });
    const file = await api(`/v1/messages/${encodeURIComponent(found.id)}/attachments/0`);
    expect(file.headers.get("content-disposition")).toContain('filename="data.csv"');
    expect(Buffer.from(await file.arrayBuffer()).toString()).toBe("a,b\n1,2\n");
    expect((await api("/v1/messages?folder=inbox&limit=10&color=red")).status).toBe(400);
  });

  it("reads the calendar", async () => {
    const res = await api(`/v1/calendar?start=${new Date(Date.now() - 86_400_000 * 7).toISOString()}`);
    expect(res.status).toBe(200);
    const events = (await res.json()) as Array<{ subject: string; start: string }>;
    expect(events.length).toBeGreaterThan(0);
    expect(events[0]!.subject).toBeTruthy();
  });
});

describe("operations", () => {
  it("healthz, readyz with each check, the OpenAPI document and Swagger UI", async () => {
    expect((await fetch(`${srv.url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${srv.url}/readyz`);
    const body = (await ready.json()) as { ready: boolean; checks: Array<{ name: string; ok: boolean }> };
    expect(body.checks.map((c) => c.name).sort()).toEqual(
      [
        "outbox:sqlite",
        "sign-in",
        "token:graph",
        "token:outlook",
        "transport:graph",
        "transport:smtp",
      ].sort(),
    );
    expect(body.ready).toBe(true);
    expect(ready.status).toBe(200);
    const doc = (await (await fetch(`${srv.url}/openapi.json`)).json()) as { paths: Record<string, unknown> };
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(["/v1/messages", "/v1/outbox/{id}", "/v1/events", "/readyz"]),
    );
    const ui = await fetch(`${srv.url}/docs/`);
    expect(ui.status).toBe(200);
    expect(await ui.text()).toContain("swagger");
  });

  it("streams outbox changes and new mail as Server-Sent Events", async () => {
    const controller = new AbortController();
    const res = await api("/v1/events", { signal: controller.signal });
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    const seen = (async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        text += value;
        if (/event: outbox\ndata: .*"state":"sent"/.test(text) && /event: mail\ndata: .*sse check/.test(text))
          return;
      }
    })();
    // Give the watch its first (baseline) round before the mail arrives.
    await new Promise((r) => setTimeout(r, 1000));
    await post({ to: USER, subject: "sse check", text: "event" });
    await Promise.race([
      seen,
      new Promise((_, reject) => setTimeout(() => reject(new Error(`no events in: ${text}`)), 20_000)),
    ]);
    controller.abort();
    expect(text).toMatch(/event: mail/);
  });
});

describe("rate limit per API key", () => {
  it("answers 429 over the limit, for that key only", async () => {
    const limited = await startTestServer(emu.emulator, { RATE_LIMIT_PER_MINUTE: "3" });
    try {
      const call = () => client(limited.url, limited.key)("/v1/outbox?limit=1");
      const statuses = [];
      for (let i = 0; i < 5; i++) statuses.push((await call()).status);
      expect(statuses).toEqual([200, 200, 200, 429, 429]);
      // Unauthenticated requests are refused before they count against anyone's limit.
      expect((await fetch(`${limited.url}/v1/outbox`)).status).toBe(401);
      expect((await fetch(`${limited.url}/healthz`)).status).toBe(200);
    } finally {
      await limited.stop();
    }
  });
});
