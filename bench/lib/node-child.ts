import { type ChildProcess, spawn } from "node:child_process";

export interface NodeChild<T> {
  /** What the child printed as its first line (JSON) once it was ready. */
  readonly ready: T;
  /** SIGTERM, and wait for the exit. */
  stop(): Promise<void>;
}

/**
 * A bench's helper process: `script` (an ES module, run with `node -e`) gets `input` as JSON, as its
 * argv[1], and prints one JSON line when it is ready. The child has an IPC channel so that it can exit
 * when the bench does (`process.on("disconnect", …)` in the script), even when the bench is killed.
 */
export async function startNodeChild<T>(name: string, script: string, input: unknown): Promise<NodeChild<T>> {
  const child: ChildProcess = spawn(
    process.execPath,
    // BENCH_CHILD_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" profiles the children (NODE_OPTIONS refuses --cpu-prof).
    [
      // biome-ignore lint/suspicious/noUndeclaredEnvVars: read by a bench, never by a turbo task
      ...(process.env.BENCH_CHILD_ARGS?.split(" ") ?? []),
      "--input-type=module",
      "-e",
      script,
      JSON.stringify(input),
    ],
    { stdio: ["ignore", "pipe", "inherit", "ipc"] },
  );
  const ready = await new Promise<T>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes("\n")) resolve(JSON.parse(out.split("\n")[0]!) as T);
    });
    child.once("exit", (code) => reject(new Error(`the ${name} process exited with ${code}`)));
  });
  return {
    ready,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      await exited;
    },
  };
}
