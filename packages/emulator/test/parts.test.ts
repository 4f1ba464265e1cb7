import { connect } from "node:net";
import { M365MailError } from "@m365-mail/core";
import { describe, expect, it } from "vitest";
import type { EmulatorContext, EmulatorPart } from "../src/index.js";
import { startTestEmulator } from "./helpers.js";

function fakePart(name: string, log: string[], fail?: Error): EmulatorPart {
  return {
    name,
    async start(context: EmulatorContext) {
      log.push(`start ${name}`);
      if (fail) throw fail;
      return {
        cloud: { smtp: { host: context.host, port: 2525 } },
        env: { [`M365_${name.toUpperCase()}_PORT`]: "2525" },
        authorityHost: context.authorityHost,
      };
    },
    async stop() {
      log.push(`stop ${name}`);
    },
  };
}

function portIsClosed(origin: string): Promise<boolean> {
  const { hostname, port } = new URL(origin);
  return new Promise((resolve) => {
    const socket = connect(Number(port), hostname);
    socket.once("connect", () => {
      socket.destroy();
      resolve(false);
    });
    socket.once("error", () => resolve(true));
  });
}

describe("emulator parts", () => {
  it("starts parts with the context, merges their cloud and env, stops them last-first", async () => {
    const log: string[] = [];
    const { emulator, cleanup } = await startTestEmulator({
      parts: [fakePart("smtp", log), fakePart("graph", log)],
    });
    expect(emulator.parts.smtp).toMatchObject({ authorityHost: emulator.authorityHost });
    expect(emulator.cloud.smtp).toEqual({ host: "127.0.0.1", port: 2525 });
    // A protocol no part serves never points at Microsoft's servers.
    expect(emulator.cloud.imap).toEqual({ host: "127.0.0.1", port: 0 });
    // Scopes keep Microsoft's resource URIs.
    expect(emulator.cloud.outlookResource).toBe("https://outlook.office.com");
    expect(emulator.cloud.authorityHost).toBe(emulator.authorityHost);
    expect(emulator.env()).toMatchObject({ M365_SMTP_PORT: "2525", NODE_EXTRA_CA_CERTS: emulator.caPath });
    await cleanup();
    expect(log).toEqual(["start smtp", "start graph", "stop graph", "stop smtp"]);
  });

  it("skips a part whose prerequisite is missing and runs the rest", async () => {
    const log: string[] = [];
    const missing = new M365MailError("NOT_SUPPORTED", "Dovecot is not installed", { source: "dovecot" });
    const { emulator, cleanup } = await startTestEmulator({
      parts: [fakePart("dovecot", log, missing), fakePart("smtp", log)],
    });
    try {
      expect(emulator.parts.dovecot?.skipped).toMatch(/Dovecot is not installed/);
      expect(emulator.parts.smtp?.skipped).toBeUndefined();
    } finally {
      await cleanup();
    }
    expect(log).toEqual(["start dovecot", "start smtp", "stop smtp"]);
  });

  it("fails the start and frees the port when a part breaks", async () => {
    const log: string[] = [];
    let origin = "";
    const spy: EmulatorPart = {
      name: "spy",
      async start(context) {
        origin = context.authorityHost;
        return {};
      },
      async stop() {
        log.push("stop spy");
      },
    };
    const error = await startTestEmulator({ parts: [spy, fakePart("broken", log, new Error("boom"))] }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(M365MailError);
    expect((error as M365MailError).code).toBe("CONNECTION_FAILED");
    expect((error as Error).cause).toBeInstanceOf(Error);
    expect(log).toContain("stop spy");
    expect(await portIsClosed(origin)).toBe(true);
  });
});
