import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { httpsRequest } from "./helpers.js";

const tsx = createRequire(import.meta.url).resolve("tsx");

describe("m365-emulator (the bin)", () => {
  it("prints what clients need, serves, and stops cleanly on SIGTERM", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "m365-emulator-bin-"));
    const child = spawn(
      process.execPath,
      ["--import", tsx, join(__dirname, "../src/bin.ts"), "--port", "0", "--data-dir", dataDir],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    try {
      let output = "";
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no banner within 30 s:\n${output}`)), 30_000);
        child.stdout.on("data", (chunk: Buffer) => {
          output += chunk.toString();
          if (output.includes("Ctrl-C stops it.")) {
            clearTimeout(timer);
            resolve();
          }
        });
        child.once("exit", (code) => reject(new Error(`exited early with ${code}:\n${output}`)));
      });
      expect(output).toContain(`export NODE_EXTRA_CA_CERTS=${join(dataDir, "ca", "ca.pem")}`);
      const authority = /authority\s+(\S+)/.exec(output)![1]!;
      const caPem = readFileSync(join(dataDir, "ca", "ca.pem"), "utf8");
      const answer = await httpsRequest({ caPem }, `${authority}/v2.0/.well-known/openid-configuration`);
      expect(answer.json.token_endpoint).toBe(`${authority}/oauth2/v2.0/token`);
      // The other parts run too, and say where.
      expect(output).toMatch(/export M365_GRAPH_ORIGIN=https:\/\/127\.0\.0\.1:\d+/);
      expect(output).toMatch(/export M365_SMTP_PORT=\d+/);
      expect(output).toMatch(/dovecot\s+(running|skipped: .+)/);

      const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
      child.kill("SIGTERM");
      const code = await Promise.race([
        exited,
        new Promise<string>((r) => setTimeout(() => r("still running"), 10_000)),
      ]);
      expect(code).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
