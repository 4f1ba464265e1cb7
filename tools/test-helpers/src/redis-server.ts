import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./free-port.js";

/**
 * Debian's redis-server, when installed (scripts/setup.sh with M365_SETUP_EXTRAS=redis).
 * @deprecated To skip a suite, use `needs("redis")`: in CI it fails the run instead of skipping silently.
 */
export const hasRedis = spawnSync("redis-server", ["--version"]).status === 0;

export interface TestRedis {
  url: string;
  stop(): Promise<void>;
}

export interface StartRedisOptions {
  /** Start of the temporary folder's name, to tell whose Redis it was. @default "m365-test-redis-" */
  prefix?: string;
}

/** A throw-away Redis on 127.0.0.1 and a free port, no persistence, in a temporary folder. */
export async function startRedis(options: StartRedisOptions = {}): Promise<TestRedis> {
  const dir = await mkdtemp(join(tmpdir(), options.prefix ?? "m365-test-redis-"));
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const child: ChildProcess = spawn(
      "redis-server",
      ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let output = "";
    const ready = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 10_000);
      child.stdout?.on("data", (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes("Ready to accept connections")) {
          clearTimeout(timer);
          resolve(true);
        }
      });
      child.once("exit", () => {
        clearTimeout(timer);
        resolve(false);
      });
    });
    if (ready) {
      return {
        url: `redis://127.0.0.1:${port}`,
        async stop() {
          if (child.exitCode === null) {
            const exited = new Promise((resolve) => child.once("exit", resolve));
            child.kill("SIGTERM");
            await exited;
          }
          await rm(dir, { recursive: true, force: true });
        },
      };
    }
    child.kill("SIGKILL");
    // The port was taken between the check and the start: try another one.
    if (attempt >= 3) {
      await rm(dir, { recursive: true, force: true });
      throw new Error(`redis-server did not start: ${output.slice(-500)}`);
    }
  }
}
