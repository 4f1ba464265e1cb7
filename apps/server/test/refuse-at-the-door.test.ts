import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ALICE, client, startTestEmulator, startTestServer, type TestEmulator, waitFor } from "./helpers.js";

// Issue 12, item 3: what Microsoft 365 refuses for sure is refused when the message is accepted —
// 400 in the documented error shape, nothing stored — instead of a 202 and a failure minutes later.

let emu: TestEmulator;
let srv: Awaited<ReturnType<typeof startTestServer>>;
let api: ReturnType<typeof client>;

beforeAll(async () => {
  emu = await startTestEmulator();
  // Attachments up to 200 MB pass the server's own limit: what refuses below is the transport's.
  srv = await startTestServer(emu.emulator, { MAX_ATTACHMENT_BYTES: String(200 * 1024 * 1024) });
  api = client(srv.url, srv.key);
}, 60_000);
afterAll(async () => {
  await srv?.stop();
  await emu?.stop();
});

const stored = async () => {
  const c = await srv.server.outbox.counts();
  return c.queued + c.sending + c.sent + c.failed;
};

const post = (body: unknown) => api("/v1/messages", { method: "POST", body: JSON.stringify(body) });

interface ErrorAnswer {
  error: { code: string; message: string; hint?: string };
}

/** Posts, expects 400 with `code`, and checks that the outbox did not grow. */
async function refused(body: unknown, code: string): Promise<ErrorAnswer["error"]> {
  const before = await stored();
  const res = await post(body);
  const answer = (await res.json()) as ErrorAnswer;
  expect(res.status, JSON.stringify(answer).slice(0, 300)).toBe(400);
  expect(answer.error.code).toBe(code);
  expect(answer.error.hint).toBeTruthy();
  expect(await stored()).toBe(before);
  return answer.error;
}

async function accepted(body: unknown): Promise<string> {
  const res = await post(body);
  const answer = (await res.json()) as { id: string };
  expect(res.status, JSON.stringify(answer).slice(0, 300)).toBe(202);
  return answer.id;
}

const addresses = (n: number, prefix: string) =>
  Array.from({ length: n }, (_, i) => `${prefix}${i}@fabrikam.example`);

describe("recipients", () => {
  it("more than 500 over to, cc and bcc together: 400 that counts them, not a schema error", async () => {
    const error = await refused(
      { to: addresses(300, "t"), cc: addresses(150, "c"), bcc: addresses(51, "b"), text: "x" },
      "MESSAGE_INVALID",
    );
    expect(error.message).toContain("501 recipients (to 300, cc 150, bcc 51)");
    expect(error.message).toContain("at most 500");
    expect(error.hint).toMatch(/several messages/);
    // One long list: the same sentence, not "body.to must be an address string or an array of them".
    const one = await refused({ to: addresses(600, "t"), text: "x" }, "MESSAGE_INVALID");
    expect(one.message).toContain("600 recipients (to 600, cc 0, bcc 0)");
  });

  it("exactly 500 is accepted", async () => {
    await accepted({ to: addresses(250, "t"), bcc: addresses(250, "b"), subject: "five hundred", text: "x" });
  });
});

describe("headers", () => {
  it("a header Graph will not take is refused when Graph sends (via graph, or auto with Graph first)", async () => {
    for (const via of ["graph", "auto"]) {
      const error = await refused(
        { to: ALICE, text: "x", via, headers: { "List-Unsubscribe": "<mailto:u@contoso.com>" } },
        "MESSAGE_INVALID",
      );
      expect(error.message).toContain(
        'Graph accepts only custom headers starting with "X-", not "List-Unsubscribe"',
      );
      expect(error.hint).toContain('"via": "smtp"');
    }
    const six = Object.fromEntries(Array.from({ length: 6 }, (_, i) => [`X-Tag-${i}`, String(i)]));
    const error = await refused({ to: ALICE, text: "x", via: "graph", headers: six }, "MESSAGE_INVALID");
    expect(error.message).toContain("Graph accepts at most 5 custom headers, got 6");
  });

  it("SMTP takes them, and delivers", async () => {
    const six = Object.fromEntries(Array.from({ length: 6 }, (_, i) => [`X-Tag-${i}`, String(i)]));
    const id = await accepted({
      to: ALICE,
      subject: "smtp headers",
      text: "x",
      via: "smtp",
      headers: { ...six, "List-Unsubscribe": "<mailto:u@contoso.com>" },
    });
    const state = await waitFor(
      async () => {
        const s = (await (await api(`/v1/outbox/${id}`)).json()) as { state: string };
        return s.state === "sent" || s.state === "failed" ? s.state : undefined;
      },
      20_000,
      "the SMTP send",
    );
    expect(state).toBe("sent");
  });

  it("a header the message's own fields write is refused on every transport", async () => {
    for (const via of ["graph", "smtp"]) {
      const error = await refused(
        { to: ALICE, text: "x", via, headers: { Bcc: "x@y.example" } },
        "MESSAGE_INVALID",
      );
      expect(error.message).toContain('header "Bcc" is written from the message\'s own fields');
    }
  });
});

describe("size, bodies included", () => {
  it("Graph: a body over the 4 MB of one request is refused; SMTP takes the same message", async () => {
    const text = "x".repeat(4 * 1024 * 1024 + 10);
    const error = await refused({ to: ALICE, text, via: "graph" }, "MESSAGE_TOO_LARGE");
    expect(error.message).toMatch(/one request of at most 4194304 bytes/);
    await accepted({ to: ALICE, subject: "big body over smtp", text, via: "smtp" });
  });

  it("SMTP: an attachment under 35 MB encoded, plus the text body, over it is refused", async () => {
    // 25 MB of attachment is ~33.4 MB in base64: under the limit alone, over it with 2 MB of text.
    const content = Buffer.alloc(25 * 1024 * 1024, 7).toString("base64");
    const body = {
      to: ALICE,
      subject: "over 35 MB with its body",
      text: "y".repeat(2 * 1024 * 1024),
      attachments: [{ filename: "big.bin", content }],
    };
    const error = await refused({ ...body, via: "smtp" }, "MESSAGE_TOO_LARGE");
    expect(error.message).toMatch(
      /once encoded for SMTP .* over Exchange Online's limit of 36700160 \(35 MB\)/,
    );
    expect(error.hint).toContain('"via": "graph"');
    // Without the text it fits: the refusal above was the bodies' doing, not the attachment's alone.
    const res = await post({ ...body, text: "small", via: "smtp", to: "nobody@fabrikam.example" });
    expect(res.status).toBe(202);
  }, 60_000);
});
