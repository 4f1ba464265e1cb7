import { spawn, spawnSync } from "node:child_process";

/** Whether the installed curl speaks `protocol` ("imaps", "pop3s"): a second, independent client for interop tests. */
export function curlSpeaks(protocol: string): boolean {
  try {
    return spawnSync("curl", ["--version"]).stdout.toString().includes(protocol);
  } catch {
    return false;
  }
}

/** Runs curl with its options on stdin (`-K -`), so a token never shows on a command line. */
export function curl(config: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn("curl", ["-K", "-"], { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
    });
    child.stderr.on("data", (chunk) => {
      stderr += chunk;
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(config);
  });
}
