import { describe, expect, expectTypeOf, it } from "vitest";
import {
  type AccessToken,
  createMailbox,
  M365MailError,
  type OutgoingMessage,
  type SendResult,
  type TokenProvider,
  type Transport,
} from "../src/index.js";

interface FakeTransport extends Transport {
  readonly sent: OutgoingMessage[];
  closed: boolean;
}

declare module "../src/index.js" {
  interface TransportRegistry {
    fake: FakeTransport;
  }
}

const auth: TokenProvider = {
  kind: "token-provider",
  name: "static",
  username: "support@contoso.com",
  async getAccessToken(resource): Promise<AccessToken> {
    return { token: "t", expiresAt: new Date(Date.now() + 3600_000), resource, scopes: [] };
  },
};

function fakeTransport(name = "fake", failWith?: M365MailError): FakeTransport {
  const sent: OutgoingMessage[] = [];
  return {
    kind: "transport",
    name,
    capabilities: { send: true, read: false, watch: false, folders: false, calendar: false },
    sent,
    closed: false,
    async verify() {
      return { transport: name, ok: true, checks: [] };
    },
    async send(message): Promise<SendResult> {
      if (failWith) throw failWith;
      sent.push(message);
      return { transport: name, messageId: "<1@x>", accepted: ["a@b.cd"], rejected: [] };
    },
    async close() {
      this.closed = true;
    },
  };
}

const message: OutgoingMessage = { to: "alice@contoso.com", subject: "hi", text: "hello" };

describe("createMailbox", () => {
  it("looks transports up by name, with their own type", () => {
    const mailbox = createMailbox({ auth, transports: [fakeTransport()] });
    const fake = mailbox.transport("fake");
    expectTypeOf(fake).toEqualTypeOf<FakeTransport>();
    expect(fake.sent).toEqual([]);
  });

  it("refuses a name registered twice", () => {
    expect(() => createMailbox({ auth, transports: [fakeTransport(), fakeTransport()] })).toThrowError(
      /a transport named "fake" is already registered/,
    );
  });

  it("names the registered transports when a lookup misses", () => {
    const mailbox = createMailbox({ auth, transports: [fakeTransport()] });
    try {
      mailbox.transport("imap");
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(M365MailError);
      expect((error as M365MailError).code).toBe("CONFIG_INVALID");
      expect((error as M365MailError).message).toContain("registered: fake");
    }
  });

  it("passes its token provider to transport factories", () => {
    let seen: TokenProvider | undefined;
    createMailbox({
      auth,
      transports: [
        (ctx) => {
          seen = ctx.auth;
          return fakeTransport();
        },
      ],
    });
    expect(seen).toBe(auth);
  });

  it("refuses a transport built for another contract version", () => {
    const old = { ...fakeTransport(), contractVersion: 0 };
    expect(() => createMailbox({ auth, transports: [old] })).toThrowError(/contract 0/);
  });

  it("validates a message before any transport sees it", async () => {
    const fake = fakeTransport();
    const mailbox = createMailbox({ auth, transports: [fake] });
    await expect(mailbox.send({ to: "not-an-address", subject: "x" })).rejects.toMatchObject({
      code: "MESSAGE_INVALID",
    });
    await expect(mailbox.send({ to: "a@b.cd", subject: "x\r\nBcc: evil@x.com" })).rejects.toMatchObject({
      code: "MESSAGE_INVALID",
    });
    await expect(mailbox.send({ to: "a@b.cd", headers: { "X-A": "1\nBcc: e@x.com" } })).rejects.toMatchObject(
      {
        code: "MESSAGE_INVALID",
      },
    );
    expect(fake.sent).toHaveLength(0);
  });

  it("falls back to the next transport only when nothing was submitted", async () => {
    const disabled = fakeTransport("graph", new M365MailError("ACCESS_DENIED", "no Mail.Send"));
    const smtp = fakeTransport("smtp");
    const mailbox = createMailbox({ auth, transports: [disabled, smtp] });
    await expect(mailbox.send(message, { via: ["graph", "smtp"] })).resolves.toMatchObject({
      transport: "smtp",
    });
    expect(smtp.sent).toHaveLength(1);

    const ambiguous = fakeTransport("graph", new M365MailError("TIMEOUT", "gateway timeout"));
    const smtp2 = fakeTransport("smtp");
    const mailbox2 = createMailbox({ auth, transports: [ambiguous, smtp2] });
    await expect(mailbox2.send(message, { via: ["graph", "smtp"] })).rejects.toMatchObject({
      code: "TIMEOUT",
    });
    expect(smtp2.sent).toHaveLength(0);
  });

  it("closes every transport and disposes the provider", async () => {
    let disposed = false;
    const fake = fakeTransport();
    const mailbox = createMailbox({
      auth: {
        ...auth,
        dispose: async () => {
          disposed = true;
        },
      },
      transports: [fake],
    });
    await mailbox.close();
    expect(fake.closed).toBe(true);
    expect(disposed).toBe(true);
  });
});
