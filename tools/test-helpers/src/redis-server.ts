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
  /** SIGKILL: what a crash or an OOM kill does to the server (only `durable` keeps the data). */
  kill(): Promise<void>;
  /** Starts it again after `kill()`, on the same port and folder (its append-only file, if durable). */
  restart(): Promise<void>;
}

export interface StartRedisOptions {
  /** Start of the temporary folder's name, to tell whose Redis it was. @default "m365-test-redis-" */
  prefix?: string;
  /**
   * `appendonly yes` + `appendfsync always`: every write is on disk before Redis answers it, the setting
   * the outbox's README asks for. @default false (no persistence)
   */
  durable?: boolean;
}

type Started = { child: ChildProcess; ok: true } | { ok: false; output: string };

function spawnRedis(port: number, dir: string, durable: boolean): Promise<Started> {
  const persistence = durable ? ["--appendonly", "yes", "--appendfsync", "always"] : ["--appendonly", "no"];
  const child = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", ...persistence, "--dir", dir],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let output = "";
  return new Promise<Started>((resolve) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      resolve({ ok: false, output });
    }, 10_000);
    child.stdout?.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes("Ready to accept connections")) {
        clearTimeout(timer);
        resolve({ child, ok: true });
      }
    });
    child.once("exit", () => {
      clearTimeout(timer);
      resolve({ ok: false, output });
    });
  });
}

const exited = (child: ChildProcess, signal: NodeJS.Signals) =>
  child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise<void>((resolve) => {
        child.once("exit", () => resolve());
        child.kill(signal);
      });

/** A throw-away Redis on 127.0.0.1 and a free port, in a temporary folder. */
export async function startRedis(options: StartRedisOptions = {}): Promise<TestRedis> {
  const dir = await mkdtemp(join(tmpdir(), options.prefix ?? "m365-test-redis-"));
  const durable = options.durable ?? false;
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const started = await spawnRedis(port, dir, durable);
    if (started.ok) {
      let child = started.child;
      return {
        url: `redis://127.0.0.1:${port}`,
        async stop() {
          await exited(child, "SIGTERM");
          await rm(dir, { recursive: true, force: true });
        },
        kill: () => exited(child, "SIGKILL"),
        async restart() {
          await exited(child, "SIGKILL");
          const again = await spawnRedis(port, dir, durable);
          if (!again.ok) throw new Error(`redis-server did not start again: ${again.output.slice(-500)}`);
          child = again.child;
        },
      };
    }
    // The port was taken between the check and the start: try another one.
    if (attempt >= 3) {
      await rm(dir, { recursive: true, force: true });
      throw new Error(`redis-server did not start: ${started.output.slice(-500)}`);
    }
  }
}
