import { createServer, type Server, type Socket } from "node:net";
import { M365MailError, type TokenProvider } from "@m365-mail/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { imapTransport } from "../src/index.js";

// A server that accepts connections and never says anything (no TLS handshake, no greeting).
let server: Server;
let port: number;
const sockets = new Set<Socket>();
beforeAll(async () => {
  server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as { port: number }).port;
});
afterAll(async () => {
  for (const socket of sockets) socket.destroy();
  await new Promise((resolve) => server.close(resolve));
});

const auth: TokenProvider = {
  kind: "token-provider",
  name: "static",
  username: "support@contoso.com",
  getAccessToken: async () => ({
    token: "t".repeat(40),
    expiresAt: new Date(Date.now() + 3600_000),
    resource: "outlook",
    scopes: [],
  }),
};

describe("a server that never answers", () => {
  it("is a TIMEOUT after timeoutMs, for implicit TLS and for STARTTLS", async () => {
    for (const secure of [true, false]) {
      const imap = imapTransport({ auth, host: "127.0.0.1", port, secure, timeoutMs: 300 });
      try {
        const error = await imap.listFolders().then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(error).toBeInstanceOf(M365MailError);
        expect((error as M365MailError).code).toBe("TIMEOUT");
        expect((error as M365MailError).retryable).toBe(true);
        expect((error as M365MailError).hint).toContain("timeoutMs");
      } finally {
        await imap.close();
      }
    }
  });

  it("verify() reports the timeout as a failed sign-in check instead of throwing", async () => {
    const imap = imapTransport({ auth, host: "127.0.0.1", port, timeoutMs: 300 });
    try {
      const report = await imap.verify();
      expect(report.ok).toBe(false);
      expect(report.checks[0]?.error?.code).toBe("TIMEOUT");
    } finally {
      await imap.close();
    }
  });
});
