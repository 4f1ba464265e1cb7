import { randomBytes } from "node:crypto";
import { readdir } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { describe, expect, it } from "vitest";
import { needs, startRedis } from "../src/index.js";

/** Sends one inline command and resolves with the first reply line, or rejects when nothing listens. */
function command(url: string, line: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    socket.setTimeout(5_000, () => socket.destroy(new Error("no answer")));
    socket.once("error", reject);
    socket.once("connect", () => socket.write(`${line}\r\n`));
    socket.once("data", (chunk) => {
      socket.end();
      resolve(chunk.toString().trim());
    });
  });
}

describe.skipIf(!needs("redis"))("startRedis", () => {
  it("serves on 127.0.0.1 until stopped, then leaves no folder behind", async () => {
    const prefix = `m365-redis-test-${randomBytes(4).toString("hex")}-`;
    const ours = async () => (await readdir(tmpdir())).filter((name) => name.startsWith(prefix));
    const redis = await startRedis({ prefix });
    try {
      expect(new URL(redis.url).hostname).toBe("127.0.0.1");
      expect(await command(redis.url, "PING")).toBe("+PONG");
      expect(await ours()).toHaveLength(1);
    } finally {
      await redis.stop();
    }
    await expect(command(redis.url, "PING")).rejects.toThrow();
    expect(await ours()).toEqual([]);
  });

  it("gives two servers two ports", async () => {
    const [a, b] = await Promise.all([startRedis(), startRedis()]);
    try {
      expect(a.url).not.toBe(b.url);
      expect(await command(b.url, "PING")).toBe("+PONG");
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });
});
