import { randomBytes } from "node:crypto";
import net from "node:net";
import { M365MailError } from "@m365-mail/core";
import { afterEach, describe, expect, it } from "vitest";
import { connectPop3, type Pop3Client } from "../src/index.js";
import { type FakePop3Options, type FakePop3Server, mime, startFakePop3 } from "./fake-pop3-server.js";

const servers: FakePop3Server[] = [];
const clients: Pop3Client[] = [];

afterEach(async () => {
  for (const client of clients.splice(0)) client.destroy();
  for (const server of servers.splice(0)) await server.close();
});

async function serve(options: FakePop3Options = {}): Promise<FakePop3Server> {
  const server = await startFakePop3(options);
  servers.push(server);
  return server;
}

async function connect(server: FakePop3Server, extra: Partial<Parameters<typeof connectPop3>[0]> = {}) {
  const client = await connectPop3({
    host: "127.0.0.1",
    port: server.port,
    ca: server.ca,
    timeoutMs: 5000,
    ...extra,
  });
  clients.push(client);
  return client;
}

async function signedIn(server: FakePop3Server, extra: Partial<Parameters<typeof connectPop3>[0]> = {}) {
  const client = await connect(server, extra);
  await client.authXOAuth2("support@contoso.com", "good-token");
  return client;
}

async function rejection(promise: Promise<unknown>): Promise<M365MailError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(M365MailError);
    return error as M365MailError;
  }
  throw new Error("expected a rejection");
}

const hello = mime([
  "Subject: hello",
  "From: alice@contoso.com",
  "To: support@contoso.com",
  "",
  "Hello there.",
]);

describe("connecting", () => {
  it("reads the greeting over implicit TLS and lists capabilities", async () => {
    const server = await serve();
    const client = await connect(server);
    expect(client.greeting).toContain("Microsoft Exchange POP3 service is ready");
    expect(await client.capa()).toContain("SASL XOAUTH2");
    expect(server.sessions[0]!.secure()).toBe(true);
  });

  it("upgrades a plain connection with STLS before anything else is sent", async () => {
    const server = await serve({ tls: "starttls", messages: [{ uid: "u1", source: hello }] });
    const client = await connect(server, { tls: "starttls" });
    const session = server.sessions[0]!;
    expect(session.lines[0]).toBe("STLS");
    expect(session.secure()).toBe(true);
    await client.authXOAuth2("support@contoso.com", "good-token");
    expect(await client.stat()).toEqual({ count: 1, size: hello.length });
  });

  it("refuses a server certificate it cannot trust, with a hint about `ca`", async () => {
    const server = await serve();
    const error = await rejection(connectPop3({ host: "127.0.0.1", port: server.port, timeoutMs: 5000 }));
    expect(error.code).toBe("CONNECTION_FAILED");
    expect(error.hint).toContain("ca");
  });

  it("times out on a server that accepts the connection and never greets", async () => {
    const server = await serve({ greet: false });
    const error = await rejection(connect(server, { timeoutMs: 300 }));
    expect(error.code).toBe("TIMEOUT");
  });
});

describe("AUTH XOAUTH2", () => {
  it("sends the command alone, waits for '+', then sends the SASL string (Exchange's two-step form)", async () => {
    const server = await serve();
    await signedIn(server);
    const lines = server.sessions[0]!.lines;
    expect(lines[0]).toBe("AUTH XOAUTH2");
    expect(Buffer.from(lines[1]!, "base64").toString()).toBe(
      "user=support@contoso.com\x01auth=Bearer good-token\x01\x01",
    );
    expect(server.sessions[0]!.user).toBe("support@contoso.com");
  });

  it("raises AUTH_FAILED on -ERR without the token in the message", async () => {
    const server = await serve();
    const client = await connect(server);
    const token = "eyJhbGciOiJub25lIn0.eyJzZWNyZXQiOiJ0b2tlbiJ9.c2lnbmF0dXJlLXNlY3JldA";
    const error = await rejection(client.authXOAuth2("support@contoso.com", token));
    expect(error.code).toBe("AUTH_FAILED");
    expect(error.message).toContain("Authentication failure");
    expect(error.message).not.toContain(token);
    expect(JSON.stringify(error.toJSON())).not.toContain("c2lnbmF0dXJlLXNlY3JldA");
  });

  // Regression: node-pop3 takes the "+ <challenge>" for success and then reads every later answer one late.
  it("answers a challenge with an empty line, raises a typed error and stays in step", async () => {
    const server = await serve({ authorize: () => "challenge" });
    const client = await connect(server);
    const error = await rejection(client.authXOAuth2("support@contoso.com", "bad-token"));
    expect(error.code).toBe("AUTH_FAILED");
    expect(error.serverCode).toBe("401");
    expect(error.message).toContain("challenged");
    expect(server.sessions[0]!.lines.slice(0, 3)).toEqual(["AUTH XOAUTH2", expect.any(String), ""]);
    // The next command gets its own answer, not the failure of AUTH.
    expect(await client.capa()).toContain("UIDL");
    await client.noop();
  });
});

describe("responses", () => {
  it("reassembles answers split into 1-byte TCP/TLS chunks", async () => {
    const server = await serve({
      chunkSize: 1,
      messages: [
        { uid: "AAA-1", source: hello },
        { uid: "BBB-2", source: mime(["Subject: two", "", "Line one", "Line two"]) },
      ],
    });
    const client = await signedIn(server);
    expect(await client.stat()).toEqual({ count: 2, size: hello.length + server.messages[1]!.source.length });
    expect(await client.list()).toEqual([
      { number: 1, size: hello.length },
      { number: 2, size: server.messages[1]!.source.length },
    ]);
    expect(await client.uidl()).toEqual([
      { number: 1, uid: "AAA-1" },
      { number: 2, uid: "BBB-2" },
    ]);
    expect(await client.uidl(2)).toEqual({ number: 2, uid: "BBB-2" });
    expect(await client.list(1)).toEqual({ number: 1, size: hello.length });
    expect((await client.retr(2)).equals(server.messages[1]!.source)).toBe(true);
  });

  it("removes dot-stuffing: lines starting with '.', '..' and a lone '.' come back as sent", async () => {
    const source = mime(["Subject: dots", "", ".", "..", ".hidden", "...three", "end ."]);
    const server = await serve({ chunkSize: 3, messages: [{ uid: "d", source }] });
    const client = await signedIn(server);
    const data = await client.retr(1);
    expect(data.toString()).toBe(source.toString());
    expect(data.equals(source)).toBe(true);
  });

  it("returns binary 8-bit content byte for byte, streamed or buffered", async () => {
    const body = randomBytes(3 * 1024 * 1024)
      .toString("base64")
      .replace(/.{76}/g, "$&\r\n");
    const source = mime([
      "Subject: big",
      "Content-Type: application/octet-stream",
      "",
      `.${body}`,
      "\u00e9t\u00e9 \u00fcber",
    ]);
    const server = await serve({ messages: [{ uid: "big", source }] });
    const client = await signedIn(server);
    const chunks: Buffer[] = [];
    for await (const chunk of client.retrStream(1)) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks).equals(source)).toBe(true);
    expect((await client.retr(1)).equals(source)).toBe(true);
  });

  it("TOP n 0 returns the headers only", async () => {
    const server = await serve({ messages: [{ uid: "t", source: hello }] });
    const client = await signedIn(server);
    const head = (await client.top(1, 0)).toString();
    expect(head).toBe("Subject: hello\r\nFrom: alice@contoso.com\r\nTo: support@contoso.com\r\n\r\n");
  });

  it("answers -ERR on a missing message with NOT_FOUND", async () => {
    const server = await serve({ messages: [{ uid: "t", source: hello }] });
    const client = await signedIn(server);
    expect((await rejection(client.retr(7))).code).toBe("NOT_FOUND");
    expect((await rejection(client.uidl(7))).code).toBe("NOT_FOUND");
    await client.noop();
  });

  it("serialises commands issued at once: one on the wire at a time, each with its own answer", async () => {
    const server = await serve({
      chunkSize: 7,
      messages: [
        { uid: "a", source: hello },
        { uid: "b", source: mime(["Subject: b", "", "b"]) },
      ],
    });
    const client = await signedIn(server);
    const [stat, list, uidl, first, second, top] = await Promise.all([
      client.stat(),
      client.list(),
      client.uidl(),
      client.retr(1),
      client.retr(2),
      client.top(2, 0),
    ]);
    expect(server.pipelined).toBe(0);
    expect(stat.count).toBe(2);
    expect(list.map((e) => e.number)).toEqual([1, 2]);
    expect(uidl.map((e) => e.uid)).toEqual(["a", "b"]);
    expect(first.equals(hello)).toBe(true);
    expect(second.toString()).toContain("Subject: b");
    expect(top.toString()).toBe("Subject: b\r\n\r\n");
  });
});

describe("deleting", () => {
  it("DELE is committed by QUIT, undone by RSET, and lost when the connection drops", async () => {
    const server = await serve({
      messages: [
        { uid: "a", source: hello },
        { uid: "b", source: hello },
        { uid: "c", source: hello },
      ],
    });
    let client = await signedIn(server);
    await client.dele(1);
    await client.rset();
    await client.dele(2);
    expect((await client.stat()).count).toBe(2);
    await client.quit();
    expect(client.closed).toBe(true);

    client = await signedIn(server);
    expect((await client.uidl()).map((e) => e.uid)).toEqual(["a", "c"]);
    await client.dele(1);
    client.destroy();

    client = await signedIn(server);
    expect((await client.uidl()).map((e) => e.uid)).toEqual(["a", "c"]);
  });
});

describe("failures", () => {
  it("a command the server never answers times out and closes the connection", async () => {
    const server = await serve({ override: (command) => (command === "NOOP" ? "silent" : undefined) });
    const client = await signedIn(server, { timeoutMs: 300 });
    const error = await rejection(client.noop());
    expect(error.code).toBe("TIMEOUT");
    expect(error.message).toContain("NOOP");
    expect(client.closed).toBe(true);
    expect((await rejection(client.stat())).code).toBe("CONNECTION_FAILED");
  });

  it("a connection dropped in the middle of RETR rejects it and every queued command with CONNECTION_FAILED", async () => {
    const source = mime(["Subject: cut", "", ...Array.from({ length: 2000 }, (_, i) => `line ${i}`)]);
    const server = await serve({
      messages: [{ uid: "cut", source }],
      // Half of the message, then the connection goes.
      override: (command) =>
        command === "RETR"
          ? {
              send: Buffer.concat([Buffer.from("+OK\r\n"), source.subarray(0, source.length / 2)]),
              thenDrop: true,
            }
          : undefined,
    });
    const client = await signedIn(server);
    const retr = client.retr(1);
    const queued = client.stat();
    expect((await rejection(retr)).code).toBe("CONNECTION_FAILED");
    expect((await rejection(queued)).code).toBe("CONNECTION_FAILED");
  });

  it("refuses a message over the size limit before downloading it", async () => {
    const server = await serve({
      messages: [{ uid: "big", source: mime(["Subject: big", "", "x".repeat(5000)]) }],
    });
    const client = await signedIn(server);
    const error = await rejection(client.retr(1, { maxBytes: 1000 }));
    expect(error.code).toBe("MESSAGE_TOO_LARGE");
    expect(error.hint).toContain("maxMessageBytes");
    expect(server.sessions[0]!.lines).not.toContain("RETR 1");
    expect(server.sessions[0]!.lines).toContain("LIST 1");
    // The connection is still usable.
    expect((await client.stat()).count).toBe(1);
  });

  it("a stream over the size limit fails with MESSAGE_TOO_LARGE; one destroyed early closes the connection", async () => {
    const source = mime(["Subject: s", "", ...Array.from({ length: 20_000 }, (_, i) => `line ${i}`)]);
    const server = await serve({ messages: [{ uid: "s", source }] });
    const client = await signedIn(server);
    const tooLarge = client.retrStream(1, { maxBytes: 100 });
    const error = await rejection(tooLarge.toArray());
    expect(error.code).toBe("MESSAGE_TOO_LARGE");
    expect(server.sessions[0]!.lines).not.toContain("RETR 1");

    const stream = client.retrStream(1);
    for await (const _chunk of stream) break; // destroys the stream after the first chunk
    expect(client.closed).toBe(true);
    expect((await rejection(client.noop())).message).toContain("destroyed before its end");
  });

  it("stops a download that grows past the limit when LIST under-reported the size", async () => {
    const source = mime(["Subject: liar", "", "y".repeat(50_000)]);
    const server = await serve({ messages: [{ uid: "liar", source, listSize: 100 }] });
    const client = await signedIn(server);
    const error = await rejection(client.retr(1, { maxBytes: 1000 }));
    expect(error.code).toBe("MESSAGE_TOO_LARGE");
    expect(client.closed).toBe(true);
  });

  it("an aborted signal closes the connection and rejects with ABORTED", async () => {
    const server = await serve({ override: (command) => (command === "NOOP" ? "silent" : undefined) });
    const controller = new AbortController();
    const client = await signedIn(server, { signal: controller.signal });
    const pending = client.noop();
    controller.abort();
    expect((await rejection(pending)).code).toBe("ABORTED");
    expect(client.closed).toBe(true);
  });

  it("a server that is not POP3 gives INVALID_RESPONSE", async () => {
    const server = net.createServer((socket) => socket.end("HTTP/1.1 400 Bad Request\r\n\r\n"));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const port = (server.address() as net.AddressInfo).port;
      const error = await rejection(
        connectPop3({ host: "127.0.0.1", port, tls: "starttls", timeoutMs: 2000 }),
      );
      expect(error.code).toBe("INVALID_RESPONSE");
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
