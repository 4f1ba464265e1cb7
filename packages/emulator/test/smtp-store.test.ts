import { afterAll, beforeAll, expect, it } from "vitest";
import type { Emulator } from "../src/index.js";
import { type SmtpEmulatorPart, smtpPart } from "../src/index.js";
import { createMailStore } from "../src/store/index.js";
import { passwordGrant, startTestEmulator } from "./helpers.js";
import { message, RawSmtpClient } from "./smtp-fixtures.js";

let emulator: Emulator;
let cleanup: () => Promise<void>;
const smtp: SmtpEmulatorPart = smtpPart();

beforeAll(async () => {
  ({ emulator, cleanup } = await startTestEmulator({ parts: [smtp] }));
});
afterAll(async () => cleanup?.());

it("puts accepted mail into the emulator's mailbox store: recipient's Inbox, sender's Sent Items (read)", async () => {
  const grant = await passwordGrant(emulator, { scope: "https://outlook.office.com/SMTP.Send" });
  const { client, auth } = await RawSmtpClient.signIn(
    smtp.port,
    emulator.caPem,
    "support@contoso.com",
    grant.json.access_token,
  );
  try {
    expect(auth).toMatch(/^235 /);
    const reply = await client.sendMail(
      "support@contoso.com",
      ["alice@contoso.com"],
      message("support@contoso.com", "alice@contoso.com", "Stored for real", "<stored-1@contoso.com>"),
    );
    expect(reply).toMatch(/^250 /);
  } finally {
    client.close();
  }
  const store = createMailStore({ root: emulator.dataDir });
  const inbox = await store.list("alice@contoso.com", "inbox");
  expect(inbox).toHaveLength(1);
  expect(inbox[0]!.seen).toBe(false);
  const { raw } = await store.read("alice@contoso.com", inbox[0]!.id);
  expect(raw.toString("utf8")).toContain("Message-ID: <stored-1@contoso.com>");
  const sent = await store.list("support@contoso.com", "sentitems");
  expect(sent).toEqual([expect.objectContaining({ seen: true })]);
});
