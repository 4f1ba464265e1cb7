import { createServer, type Server } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseJson, runCli, SUPPORT, startTestEmulator, type TestEmulator } from "./helpers.js";

// Issue 12, item 1: a send that cannot have left exits with the code of its real cause (README's exit
// code table), never as "no clear answer … may have been sent". A TLS failure does not pass by retrying:
// the README's table counts it as a configuration error (2), like an untrusted CA.

let emu: TestEmulator;
let plain: Server;
let plainPort: number;
// Test servers listen on 127.0.0.1 only, so nothing answers on 127.0.0.2 (fetch refuses ports such as 1).
const CLOSED = "https://127.0.0.2:44999";
beforeAll(async () => {
  emu = await startTestEmulator(undefined, { dovecot: false });
  plain = createServer((socket) => socket.end("HTTP/1.1 400 Bad Request\r\n\r\n"));
  await new Promise<void>((resolve) => plain.listen(0, "127.0.0.1", resolve));
  plainPort = (plain.address() as { port: number }).port;
});
afterAll(async () => {
  plain?.close();
  await emu?.stop();
});

const send = (env: Record<string, string>) =>
  runCli(["send", "--via", "graph", "--to", SUPPORT, "-s", "never left", "--text", "x", "--json"], {
    env: { ...emu.env(), ...env },
    cwd: emu.home,
  });

describe("m365-mail send over Graph, when the message cannot have left", () => {
  it.each<[string, number, string, () => Record<string, string>]>([
    ["the sign-in authority is unreachable", 4, "CONNECTION_FAILED", () => ({ M365_AUTHORITY_HOST: CLOSED })],
    [
      "the authority's certificate is not trusted",
      2,
      "CONNECTION_FAILED",
      () => ({ M365_CA_FILE: "/etc/ssl/certs/ca-certificates.crt" }),
    ],
    ["the password is wrong (AADSTS50126)", 3, "AUTH_FAILED", () => ({ M365_PASSWORD: "wrong-password" })],
    ["Graph refuses the connection", 4, "CONNECTION_FAILED", () => ({ M365_GRAPH_ORIGIN: CLOSED })],
    [
      "the TLS handshake with Graph fails",
      2,
      "CONNECTION_FAILED",
      () => ({ M365_GRAPH_ORIGIN: `https://127.0.0.1:${plainPort}` }),
    ],
  ])("%s: exit %i with %s, marked not sent", { timeout: 60_000 }, async (_what, exit, code, env) => {
    const result = await send(env());
    expect(result.code, result.stderr + result.stdout).toBe(exit);
    const { error } = parseJson(result);
    expect(error).toMatchObject({ code, requestSent: false });
    expect(error.message).not.toMatch(/may have been sent|no clear answer/);
  });
});
