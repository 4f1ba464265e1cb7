import { X509Certificate } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type TLSSocket, connect as tlsConnect } from "node:tls";
import type { TestEmulator } from "@m365-mail/emulator";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type Bridge, type BridgeConfigInput, formatStatus, startBridge } from "../src/index.js";
import { selfSignedCertificate } from "../src/tls-material.js";
import {
  bridgeCommand,
  collectingLogger,
  configFor,
  run,
  startSmtpEmulator,
  startWebhookReceiver,
  waitFor,
} from "./bridge-env.js";

/** A self-signed key and certificate, valid for `days` from now. */
function makeCertificate(days: number): { key: string; cert: string; fingerprint: string } {
  const { key, cert } = selfSignedCertificate({ days, hosts: [] });
  return { key, cert, fingerprint: fingerprintOf(cert) };
}

const fingerprintOf = (pem: string) =>
  new X509Certificate(pem).fingerprint256.replace(/:/g, "").toLowerCase();

/**
 * The certificate a real client is shown: Python's smtplib after STARTTLS, or imaplib over implicit TLS
 * (certificate checks off: these are self-signed), as the SHA-256 of its DER.
 */
async function presented(protocol: "smtp" | "imap", port: number): Promise<string> {
  const script = `
import hashlib, imaplib, smtplib, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
port = int(sys.argv[2])
if sys.argv[1] == "smtp":
    s = smtplib.SMTP("127.0.0.1", port, timeout=10); s.starttls(context=ctx); der = s.sock.getpeercert(True); s.quit()
else:
    m = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=ctx, timeout=10); der = m.sock.getpeercert(True); m.shutdown()
print(hashlib.sha256(der).hexdigest())
`;
  const result = await run("python3", ["-c", script, protocol, String(port)]);
  if (result.code !== 0) throw new Error(`python3: ${result.stderr}`);
  return result.stdout.trim();
}

/** An IMAP session over implicit TLS, greeted and left open. */
async function openImapSession(
  port: number,
): Promise<{ socket: TLSSocket; say: (line: string) => Promise<string> }> {
  const socket = tlsConnect({ host: "127.0.0.1", port, rejectUnauthorized: false });
  let buffer = "";
  socket.setEncoding("latin1");
  socket.on("data", (chunk: string) => {
    buffer += chunk;
  });
  const until = (pattern: RegExp) => waitFor(async () => pattern.test(buffer) && buffer, 5000);
  await until(/^\* OK/);
  return {
    socket,
    async say(line) {
      buffer = "";
      socket.write(`${line}\r\n`);
      const tag = line.split(" ")[0]!;
      return until(new RegExp(`^${tag} (OK|NO|BAD)`, "m"));
    },
  };
}

let emulator: TestEmulator;
let bridge: Bridge | undefined;

beforeAll(async () => {
  emulator = await startSmtpEmulator();
});
afterEach(async () => {
  await bridge?.close({ drainMs: 0 });
  bridge = undefined;
});
afterAll(async () => {
  await emulator?.stop();
});

const account = { credentials: { mode: "passthrough" as const, username: "support@contoso.com" } };

describe("certificate renewal", () => {
  it("a reload presents renewed certificate files to new connections; listeners and open sessions stay", async () => {
    const dir = join(emulator.dataDir, "renewal-files");
    await mkdir(dir, { recursive: true });
    const certFile = join(dir, "fullchain.pem");
    const keyFile = join(dir, "privkey.pem");
    const first = makeCertificate(60);
    await writeFile(certFile, first.cert);
    await writeFile(keyFile, first.key);
    const tls = { certFile, keyFile };
    const input: BridgeConfigInput = {
      listeners: [
        { protocol: "smtp", host: "127.0.0.1", port: 0, security: "starttls", tls },
        { protocol: "imap", host: "127.0.0.1", port: 0, security: "tls", tls },
      ],
      accounts: [account],
    };
    const logger = collectingLogger();
    bridge = await startBridge(configFor(emulator, input), { logger });
    const [smtp, imap] = bridge.addresses;
    expect(await presented("smtp", smtp!.port)).toBe(first.fingerprint);
    expect(await presented("imap", imap!.port)).toBe(first.fingerprint);
    const before = await openImapSession(imap!.port);

    // certbot renews: new files at the same paths, then `systemctl reload` (SIGHUP → reload).
    const renewed = makeCertificate(90);
    await writeFile(certFile, renewed.cert);
    await writeFile(keyFile, renewed.key);
    await bridge.reload(configFor(emulator, input));

    expect(bridge.addresses).toEqual([smtp, imap]);
    expect(await presented("smtp", smtp!.port)).toBe(renewed.fingerprint);
    expect(await presented("imap", imap!.port)).toBe(renewed.fingerprint);
    // The session opened before the renewal goes on, on its old certificate.
    expect(await before.say("a1 CAPABILITY")).toMatch(/^a1 OK/m);
    expect(fingerprintOf(before.socket.getPeerX509Certificate()!.toString())).toBe(first.fingerprint);
    before.socket.destroy();

    const expiresAt = new X509Certificate(renewed.cert).validTo;
    for (const l of bridge.status().listeners) {
      expect(l.certificate).toEqual({ file: certFile, expiresAt: new Date(expiresAt).toISOString() });
    }
    expect(bridge.metrics()).toContain(
      `m365_bridge_tls_certificate_expiry_timestamp_seconds{file="${certFile}",listener="imap 127.0.0.1:${imap!.port}"} ${Date.parse(expiresAt) / 1000}`,
    );
    expect(formatStatus(bridge.status())).toMatch(
      /certificate .*fullchain\.pem, valid until \d{4}-\d\d-\d\d \(8[89] days\)/,
    );
    expect(logger.lines.filter((l) => l.includes("presents a new certificate"))).toHaveLength(2);

    // A renewal that left the old key beside the new certificate fails the reload; nothing changes.
    await writeFile(certFile, makeCertificate(90).cert);
    await expect(bridge.reload(configFor(emulator, input))).rejects.toMatchObject({
      code: "CONFIG_INVALID",
      message: expect.stringContaining(
        `the key in ${keyFile} does not belong to the certificate in ${certFile}`,
      ),
    });
    expect(await presented("smtp", smtp!.port)).toBe(renewed.fingerprint);
    expect(await presented("imap", imap!.port)).toBe(renewed.fingerprint);
  });

  it("a certificate that ends within 14 days is logged at each read, posted to the webhook once, and marked in status", async () => {
    const dir = join(emulator.dataDir, "ending-files");
    await mkdir(dir, { recursive: true });
    const ending = makeCertificate(5);
    await writeFile(join(dir, "cert.pem"), ending.cert);
    await writeFile(join(dir, "key.pem"), ending.key);
    const logger = collectingLogger();
    const receiver = await startWebhookReceiver();
    const input: BridgeConfigInput = {
      listeners: [
        {
          protocol: "smtp",
          host: "127.0.0.1",
          port: 0,
          security: "tls",
          tls: { certFile: join(dir, "cert.pem"), keyFile: join(dir, "key.pem") },
        },
      ],
      accounts: [account],
      webhookUrl: receiver.url,
    };
    try {
      bridge = await startBridge(configFor(emulator, input), { logger });
      expect(logger.lines.find((l) => l.startsWith("warn") && l.includes("expires on"))).toContain(
        join(dir, "cert.pem"),
      );
      // A webhook event once per certificate: a reload with the same files logs again but posts nothing.
      await bridge.reload(configFor(emulator, input));
      await waitFor(async () => receiver.events.length > 0);
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(receiver.events).toEqual([
        {
          type: "certificate-ending",
          listener: "smtp 127.0.0.1:0",
          file: join(dir, "cert.pem"),
          expiresAt: new Date(new X509Certificate(ending.cert).validTo).toISOString(),
          daysLeft: 4,
        },
      ]);
      expect(logger.lines.filter((l) => l.startsWith("warn") && l.includes("expires on"))).toHaveLength(2);
    } finally {
      await receiver.close();
    }
    expect(formatStatus(bridge.status())).toMatch(
      /⚠ valid until .* \(4 day\(s\)\): renew it, then reload the bridge/,
    );
  });

  it("a running bridge makes its generated certificate anew before it ends, without a restart", async () => {
    const dataDir = join(emulator.dataDir, "generated-renewal");
    const logger = collectingLogger();
    bridge = await startBridge(
      configFor(emulator, {
        dataDir,
        listeners: [{ protocol: "smtp", host: "127.0.0.1", port: 0, security: "starttls" }],
        accounts: [account],
      }),
      { logger, certificateCheckMs: 200 },
    );
    const port = bridge.addresses[0]!.port;
    const original = await presented("smtp", port);
    // Two years later: the certificate in dataDir has 3 days left.
    const old = makeCertificate(3);
    await writeFile(join(dataDir, "tls", "bridge-key.pem"), old.key);
    await writeFile(join(dataDir, "tls", "bridge-cert.pem"), old.cert);
    const renewed = await waitFor(async () => {
      const now = bridge!.status().listeners[0]!.certificate!;
      return Date.parse(now.expiresAt) > Date.now() + 800 * 86_400_000 && now;
    });
    expect(renewed.file).toBe(join(dataDir, "tls", "bridge-cert.pem"));
    const served = await presented("smtp", port);
    expect(served).not.toBe(original);
    expect(served).not.toBe(old.fingerprint);
    expect(logger.lines.some((l) => l.includes("generated a self-signed certificate"))).toBe(true);
  });

  it("bridge doctor checks each TLS listener's certificate before the bridge runs, and writes nothing", async () => {
    const dir = join(emulator.dataDir, "doctor-files");
    await mkdir(dir, { recursive: true });
    const good = makeCertificate(90);
    const ended = makeCertificate(-1);
    await writeFile(join(dir, "good.pem"), good.cert);
    await writeFile(join(dir, "good.key"), good.key);
    await writeFile(join(dir, "ended.pem"), ended.cert);
    await writeFile(join(dir, "ended.key"), ended.key);
    const configPath = join(dir, "bridge.json");
    const dataDir = join(dir, "data");
    const listener = (port: number, certFile?: string, keyFile?: string) => ({
      protocol: "smtp",
      host: "127.0.0.1",
      port,
      security: "starttls",
      ...(certFile ? { tls: { certFile: join(dir, certFile), keyFile: join(dir, keyFile!) } } : {}),
    });
    const write = (listeners: object[]) =>
      writeFile(
        configPath,
        JSON.stringify({ dataDir, listeners, accounts: [account], m365: { tenantId: emulator.tenantId } }),
      );
    const env = { ...process.env, ...emulator.env() };

    await write([listener(2587, "good.pem", "good.key"), listener(2588)]);
    const ready = await bridgeCommand(["doctor", "--config", configPath], env);
    expect(ready.code).toBe(0);
    expect(ready.stdout).toMatch(
      /✓ smtp 127\.0\.0\.1:2587 \(starttls\) {2}certificate .*good\.pem, valid until \d{4}-\d\d-\d\d \(89 days\)/,
    );
    expect(ready.stdout).toMatch(
      /✓ smtp 127\.0\.0\.1:2588 \(starttls\) {2}certificate generated on the bridge's first start as .*bridge-cert\.pem/,
    );

    await write([listener(2587, "ended.pem", "ended.key"), listener(2588, "good.pem", "ended.key")]);
    const broken = await bridgeCommand(["doctor", "--config", configPath], env);
    expect(broken.code).toBe(1);
    expect(broken.stdout).toMatch(
      /✗ smtp 127\.0\.0\.1:2587 .*\n\s+CONFIG_INVALID: the certificate in .*ended\.pem ended on \d{4}-\d\d-\d\d\n\s+→ Renew it, then reload the bridge/,
    );
    expect(broken.stdout).toMatch(
      /✗ smtp 127\.0\.0\.1:2588 .*\n\s+CONFIG_INVALID: the key in .*ended\.key does not belong to the certificate in .*good\.pem/,
    );
    expect(broken.stdout).toContain("2 listener certificate(s) need a change");
    // Nothing generated by a check.
    await expect(readFile(join(dataDir, "tls", "bridge-cert.pem"))).rejects.toMatchObject({ code: "ENOENT" });
  });
});
