import { randomBytes } from "node:crypto";
import {
  type GetTokenOptions,
  GRAPH_PERMISSIONS,
  isM365MailError,
  M365MailError,
  type Resource,
  type TokenProvider,
} from "@m365-mail/core";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { UPLOAD_CHUNK_BYTES } from "../src/index.js";
import { CONSENT_RECHECK_MS } from "../src/middleware.js";
import {
  type EmulatorFixture,
  SHARED,
  SUPPORT,
  startGraphEmulator,
  withSubject,
} from "./emulator-helpers.js";

let fixture: EmulatorFixture;
beforeAll(async () => {
  fixture = await startGraphEmulator();
});
afterAll(async () => {
  await fixture?.stop();
});
afterEach(() => {
  fixture.emulator.admin.clearFaults();
  fixture.emulator.admin.resetCounts();
});

async function failure(promise: Promise<unknown>): Promise<M365MailError> {
  const outcome = await promise.then(
    () => undefined,
    (error: unknown) => error,
  );
  if (outcome instanceof M365MailError) return outcome;
  throw new Error(`expected an M365MailError, got ${String(outcome)}`);
}

const tag = () => randomBytes(4).toString("hex");

/** The provider, counting the token requests that asked for a fresh token (`forceRefresh`). */
function countingForcedRefreshes(auth: TokenProvider): TokenProvider & { forced: number } {
  const counting = {
    ...auth,
    forced: 0,
    getAccessToken: (resource: Resource, o?: GetTokenOptions) => {
      if (o?.forceRefresh) counting.forced++;
      return auth.getAccessToken(resource, o);
    },
  };
  return counting;
}

describe("graph transport against the emulator", () => {
  it("a revoked token gets a 401, one forced refresh, and the call succeeds", async () => {
    const counting = countingForcedRefreshes(fixture.auth());
    const t = fixture.transport({ auth: counting });
    await t.listFolders();
    fixture.emulator.admin.revokeTokens(SUPPORT);
    const folders = await t.listFolders();
    expect(folders.some((f) => f.specialUse === "inbox")).toBe(true);
    expect(counting.forced).toBe(1);
    expect(fixture.emulator.admin.counts()["graph.401"]).toBeGreaterThanOrEqual(1);
  });

  it("a 429 with Retry-After is waited out, then the call succeeds", async () => {
    const t = fixture.transport();
    fixture.emulator.admin.armFault({
      target: "graph",
      path: "/mailFolders/inbox",
      kind: "status429",
      retryAfterSeconds: 1,
    });
    const started = Date.now();
    const report = await t.verify();
    expect(report.checks.find((c) => c.name === "Mail.Read")?.ok).toBe(true);
    expect(fixture.emulator.admin.counts()["graph.429"]).toBe(1);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
  });

  it("a lasting 503 ends in a retryable THROTTLED within the configured wait", async () => {
    const t = fixture.transport({ retry: { attempts: 20, maxWaitMs: 2_000 } });
    fixture.emulator.admin.armFault({
      target: "graph",
      kind: "status503",
      retryAfterSeconds: 1,
      times: 1000,
    });
    const started = Date.now();
    const error = await failure(t.markRead("any", true));
    expect(error.code).toBe("THROTTLED");
    expect(error.retryable).toBe(true);
    expect(error.retryAfterSeconds).toBe(1);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("a 504 after sendMail was processed delivers exactly one message", async () => {
    const t = fixture.transport();
    const subject = `504 after processing ${tag()}`;
    fixture.emulator.admin.armFault({ target: "graph", path: "/sendMail", kind: "status504", after: true });
    const result = await t.send({ to: SUPPORT, subject, text: "sent once" });
    expect(fixture.emulator.admin.counts()["graph.504"]).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await withSubject(t, subject)).toHaveLength(1);
    const sent = await withSubject(t, subject, "sent");
    expect(sent.map((m) => m.internetMessageId)).toEqual([result.messageId]);
  });

  it("a 504 before sendMail was processed sends again, still exactly once", async () => {
    const t = fixture.transport({ sentItemsLookupMs: 500 });
    const subject = `504 before processing ${tag()}`;
    fixture.emulator.admin.armFault({ target: "graph", path: "/sendMail", kind: "status504" });
    await t.send({ to: SUPPORT, subject, text: "sent once" });
    expect(await withSubject(t, subject)).toHaveLength(1);
  });

  it("a dropped connection on sendMail does not deliver twice", async () => {
    const t = fixture.transport({ sentItemsLookupMs: 500 });
    const subject = `reset ${tag()}`;
    fixture.emulator.admin.armFault({ target: "graph", path: "/sendMail", kind: "reset" });
    await t.send({ to: SUPPORT, subject, text: "sent once" });
    expect(await withSubject(t, subject)).toHaveLength(1);
  });

  // Regression: a `send` of the large-message path that Graph refused unprocessed left its draft in
  // Drafts, and every retry (the outbox's) added one more.
  it("a draft whose send Graph refused (429) is deleted; one whose send may have gone through is kept", async () => {
    const t = fixture.transport({ uncertainSends: "report", timeoutMs: 60_000 });
    const large = (subject: string) => ({
      to: SUPPORT,
      subject,
      text: "large attachment",
      attachments: [{ filename: "big.bin", content: new Uint8Array(randomBytes(3_500_000)) }],
    });
    const refused = `draft refused ${tag()}`;
    // A Retry-After beyond retry.maxDelayMs: THROTTLED at once, "not processed".
    fixture.emulator.admin.armFault({
      target: "graph",
      path: "/send",
      kind: "status429",
      retryAfterSeconds: 120,
    });
    expect((await failure(t.send(large(refused)))).code).toBe("THROTTLED");
    expect(await withSubject(t, refused, "drafts")).toHaveLength(0);
    expect(await withSubject(t, refused)).toHaveLength(0);

    const unclear = `draft unclear ${tag()}`;
    // A 504 may come after Graph sent it: the draft stays, for whoever checks Sent Items.
    fixture.emulator.admin.armFault({ target: "graph", path: "/send", kind: "status504" });
    expect((await failure(t.send(large(unclear)))).status).toBe(504);
    expect(await withSubject(t, unclear, "drafts")).toHaveLength(1);
  }, 60_000);

  it("an attachment upload that fails leaves no draft and says the message was not sent", async () => {
    const t = fixture.transport({ uncertainSends: "report", timeoutMs: 60_000 });
    const subject = `upload dropped ${tag()}`;
    // The connection drops on the upload session: the message itself never reached /send.
    fixture.emulator.admin.armFault({ target: "graph", path: "/createUploadSession", kind: "reset" });
    const error = await failure(
      t.send({
        to: SUPPORT,
        subject,
        text: "large attachment",
        attachments: [{ filename: "big.bin", content: new Uint8Array(randomBytes(3_500_000)) }],
      }),
    );
    expect(error.requestSent).toBe(false);
    expect(error.message).toMatch(/not sent/);
    expect(await withSubject(t, subject, "drafts")).toHaveLength(0);
    expect(await withSubject(t, subject)).toHaveLength(0);
  }, 60_000);

  it("a 10 MB attachment arrives byte-identical (draft + upload session in chunks under 4 MB)", async () => {
    const t = fixture.transport({ timeoutMs: 60_000 });
    const subject = `10 MB ${tag()}`;
    const content = new Uint8Array(randomBytes(10 * 1024 * 1024));
    await t.send({
      to: SUPPORT,
      subject,
      text: "large attachment",
      attachments: [
        { filename: "big.bin", content, contentType: "application/octet-stream" },
        { filename: "small.txt", content: "small one ✓" },
      ],
    });
    expect(fixture.emulator.admin.counts()["graph.upload.chunks"]).toBe(
      Math.ceil(content.byteLength / UPLOAD_CHUNK_BYTES),
    );
    const [summary] = await withSubject(t, subject);
    expect(summary).toBeDefined();
    const message = await t.getMessage(summary!.id);
    const big = message.attachments.find((a) => a.filename === "big.bin");
    expect(big?.content.byteLength).toBe(content.byteLength);
    expect(Buffer.from(big!.content).equals(Buffer.from(content))).toBe(true);
    expect(Buffer.from(message.attachments.find((a) => a.filename === "small.txt")!.content).toString()).toBe(
      "small one ✓",
    );
  }, 120_000);

  it("reads a shared mailbox with Mail.Read.Shared", async () => {
    const t = fixture.transport({ mailbox: SHARED });
    const folders = await t.listFolders();
    expect(folders.some((f) => f.specialUse === "inbox")).toBe(true);
    for await (const _ of t.listMessages({ folder: "inbox", limit: 5 })) {
      // reading works; the mailbox may be empty
    }
  });

  it("refuses a shared mailbox read without Mail.Read.Shared, naming the permission", async () => {
    const { admin, clientId } = fixture.emulator;
    const granted = GRAPH_PERMISSIONS.filter((p) => !p.endsWith(".Shared"));
    admin.updateApp(clientId, { grantedPermissions: { graph: [...granted], outlook: ["SMTP.Send"] } });
    try {
      const t = fixture.transport({ mailbox: SHARED });
      const error = await failure(t.getMessage("any"));
      expect(error.code).toBe("ACCESS_DENIED");
      expect(error.message).toContain("Mail.Read.Shared");
      expect(error.hint).toContain("API permissions");
      expect(error.hint).toContain("Grant admin consent");
    } finally {
      admin.updateApp(clientId, {
        grantedPermissions: {
          graph: [...GRAPH_PERMISSIONS],
          outlook: ["SMTP.Send", "IMAP.AccessAsUser.All", "POP.AccessAsUser.All"],
        },
      });
    }
  });

  it("Mail.Send granted after a 403: the next send asks once for a fresh token and goes out, without waiting for the cached token to expire", async () => {
    const { admin, clientId } = fixture.emulator;
    const allGranted = admin.directory().tenants[0]!.apps[0]!.grantedPermissions;
    const counting = countingForcedRefreshes(fixture.auth());
    const t = fixture.transport({ auth: counting });
    const subject = `consent ${tag()}`;
    admin.updateApp(clientId, {
      grantedPermissions: {
        ...allGranted,
        graph: (allGranted.graph ?? []).filter((p) => p !== "Mail.Send"),
      },
    });
    // Only Date is faked: sockets and timers run as usual.
    vi.useFakeTimers({ toFake: ["Date"], now: Date.now() });
    try {
      const first = await failure(t.send({ to: SUPPORT, subject, text: "once" }));
      expect(first.code).toBe("ACCESS_DENIED");
      expect(first.hint).toContain("Mail.Send");
      // The token lacked Mail.Send: one fresh token was asked for, and it lacked it too.
      expect(counting.forced).toBe(1);
      expect((await failure(t.send({ to: SUPPORT, subject, text: "once" }))).code).toBe("ACCESS_DENIED");
      // At most once a minute: a loop of refused sends does not become a loop of token requests.
      expect(counting.forced).toBe(1);
      admin.updateApp(clientId, { grantedPermissions: allGranted });
      vi.setSystemTime(Date.now() + CONSENT_RECHECK_MS);
      await t.send({ to: SUPPORT, subject, text: "once" });
      expect(counting.forced).toBe(2);
    } finally {
      vi.useRealTimers();
      admin.updateApp(clientId, { grantedPermissions: allGranted });
    }
    expect(await withSubject(t, subject)).toHaveLength(1);
  });

  it("an Outlook-audience token on Graph is WRONG_SCOPE naming the Graph scope prefix", async () => {
    const auth = fixture.auth();
    const outlookForGraph = {
      ...auth,
      getAccessToken: (_r: "graph" | "outlook", o?: object) => auth.getAccessToken("outlook", o),
    };
    const t = fixture.transport({ auth: outlookForGraph });
    const error = await failure(t.listFolders());
    expect(error.code).toBe("WRONG_SCOPE");
    expect(error.hint).toContain("https://graph.microsoft.com/");
    expect(error.message).toContain("outlook");
    const report = await t.verify();
    expect(report.ok).toBe(false);
    expect(isM365MailError(report.checks[0]?.error, "WRONG_SCOPE")).toBe(true);
  });
});
