import { randomBytes } from "node:crypto";
import { composeReply, validateOutgoingMessage } from "@m365-mail/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ImapTransport } from "../src/index.js";
import {
  collect,
  dovecotMissing,
  emulatorProvider,
  type ImapEmulator,
  startImapEmulator,
  transportFor,
} from "./emulator-helpers.js";

const SUPPORT = "support@contoso.com";

// Regression: composeReply split Reply-To on every comma, so `"Wilber, Alice" <…>` gave two
// invalid addresses and a reply over IMAP failed with MESSAGE_INVALID (CLI exit 2).
describe.skipIf(dovecotMissing)("replying to a message read over IMAP (emulator + Dovecot)", () => {
  let env: ImapEmulator;
  let imap: ImapTransport;
  beforeAll(async () => {
    env = await startImapEmulator();
    imap = transportFor(env, emulatorProvider(env.emulator));
  });
  afterAll(async () => {
    await imap?.close();
    await env?.cleanup();
  });

  it("reads Reply-To and Cc as address lists: quoted commas, comments, groups and encoded words", async () => {
    const subject = `reply-to ${randomBytes(4).toString("hex")}`;
    const raw = [
      "From: Alice Wilber <alice@contoso.com>",
      `To: ${SUPPORT}, =?UTF-8?B?SsO2cmcgTcO8bGxlcg==?= <jorg@contoso.com>`,
      'Cc: Team: "Doe, John" <john@contoso.com>, bob@contoso.com (Bob B);',
      'Reply-To: "Wilber, Alice" <alice@contoso.com>, =?utf-8?Q?Ops=2C_Desk?= <ops@contoso.com>',
      `Subject: ${subject}`,
      "Message-ID: <rt1@contoso.com>",
      "In-Reply-To: <root@contoso.com>",
      "",
      "please answer to reply-to",
      "",
    ].join("\r\n");
    await env.store.deliver(SUPPORT, "inbox", Buffer.from(raw));
    const [summary] = (await collect(imap.listMessages({ folder: "inbox" }))).filter(
      (m) => m.subject === subject,
    );
    const original = await imap.getMessage(summary!.id);

    const reply = composeReply(original, { kind: "reply", text: "done" }, SUPPORT);
    validateOutgoingMessage(reply);
    expect(reply.to).toEqual([
      { address: "alice@contoso.com", name: "Wilber, Alice" },
      { address: "ops@contoso.com", name: "Ops, Desk" },
    ]);
    // The parent has In-Reply-To but no References: the thread continues from it (RFC 5322 3.6.4).
    expect(reply.headers).toEqual({
      "In-Reply-To": "<rt1@contoso.com>",
      References: "<root@contoso.com> <rt1@contoso.com>",
    });

    const all = composeReply(original, { kind: "replyAll", text: "done" }, SUPPORT);
    validateOutgoingMessage(all);
    expect(all.to).toEqual([
      { address: "alice@contoso.com", name: "Wilber, Alice" },
      { address: "ops@contoso.com", name: "Ops, Desk" },
      { address: "jorg@contoso.com", name: "Jörg Müller" },
    ]);
    expect(all.cc).toEqual([
      { address: "john@contoso.com", name: "Doe, John" },
      { address: "bob@contoso.com", name: "Bob B" },
    ]);
  });
});
