import { describe, expect, it } from "vitest";
import { serialQueue } from "../src/index.js";

const tick = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("serialQueue", () => {
  it("runs tasks one at a time, in the order they were queued, even when a later one is faster", async () => {
    const serial = serialQueue();
    const log: string[] = [];
    let running = 0;
    let most = 0;
    const task = (name: string, ms: number) => async () => {
      running++;
      most = Math.max(most, running);
      log.push(`start ${name}`);
      await tick(ms);
      log.push(`end ${name}`);
      running--;
      return name;
    };
    const results = await Promise.all([serial(task("a", 30)), serial(task("b", 1)), serial(task("c", 10))]);
    expect(results).toEqual(["a", "b", "c"]);
    expect(most).toBe(1);
    expect(log).toEqual(["start a", "end a", "start b", "end b", "start c", "end c"]);
  });

  it("a task that rejects or throws fails only its own call; the next one still runs", async () => {
    const serial = serialQueue();
    const rejected = serial(async () => {
      await tick(5);
      throw new Error("first");
    });
    const thrown = serial(() => {
      throw new Error("second");
    });
    const third = serial(() => "third");
    await expect(rejected).rejects.toThrow("first");
    await expect(thrown).rejects.toThrow("second");
    await expect(third).resolves.toBe("third");
  });

  it("does not start a task before the previous one has settled", async () => {
    const serial = serialQueue();
    let release!: () => void;
    const first = serial(() => new Promise<void>((resolve) => (release = resolve)));
    let secondStarted = false;
    const second = serial(() => {
      secondStarted = true;
    });
    await tick(10);
    expect(secondStarted).toBe(false);
    release();
    await Promise.all([first, second]);
    expect(secondStarted).toBe(true);
  });

  it("keeps two queues independent", async () => {
    const one = serialQueue();
    const two = serialQueue();
    let release!: () => void;
    void one(() => new Promise<void>((resolve) => (release = resolve)));
    await expect(two(() => "not blocked")).resolves.toBe("not blocked");
    release();
  });
});
