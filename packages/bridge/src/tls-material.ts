import { createPrivateKey, generateKeyPairSync, randomBytes, X509Certificate } from "node:crypto";
import { chmod, mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { isIP } from "node:net";
import { hostname } from "node:os";
import { join, resolve } from "node:path";
import { type Logger, M365MailError, withFileLock } from "@m365-mail/core";
import forge from "node-forge";

export interface TlsMaterial {
  readonly key: string;
  readonly cert: string;
  /** Where the certificate is, for "how to trust it" messages. */
  readonly certPath: string;
  readonly generated: boolean;
  /** The certificate's end of validity (of the first one, in a chain file). */
  readonly expiresAt: Date;
}

/**
 * The listener's key and certificate: from the configured files, or a self-signed certificate generated
 * on first start and kept in `<dataDir>/tls/` so clients trust it once. node:crypto cannot build X.509
 * certificates, hence node-forge (the key itself comes from node:crypto, which is fast).
 */
export async function loadTlsMaterial(options: {
  certFile?: string;
  keyFile?: string;
  dataDir: string;
  /** Names and addresses the certificate should cover besides localhost and loopback. */
  hosts?: readonly string[];
  logger: Logger;
}): Promise<TlsMaterial> {
  if (options.certFile && options.keyFile) return readConfiguredPair(options.certFile, options.keyFile);
  const { dir, certPath, keyPath } = generatedPaths(options.dataDir);
  const failed = (error: unknown) =>
    new M365MailError("CONFIG_INVALID", `cannot create the bridge's certificate in ${dir}`, {
      source: "bridge",
      cause: error,
      hint: "Make dataDir writable for the bridge's user, or configure listeners[].tls.certFile and keyFile.",
    });
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw failed(error);
  }
  // Bridges started together on one dataDir (a restart overlapping the old process, several listeners)
  // must end with one pair: the first creates it, the others read it.
  return withFileLock(join(dir, "generate.lock"), () => readOrGenerate(certPath, keyPath, options, failed), {
    waitMs: 30_000,
    onTimeout: () =>
      failed(new Error(`another process holds ${join(dir, "generate.lock")}; if none runs, delete it`)),
    onFailure: failed,
  });
}

/** Where the generated certificate and its key are kept. */
export function generatedPaths(dataDir: string): { dir: string; certPath: string; keyPath: string } {
  const dir = resolve(dataDir, "tls");
  return { dir, certPath: join(dir, "bridge-cert.pem"), keyPath: join(dir, "bridge-key.pem") };
}

/** A configured certificate and key, read and checked (nothing is written). */
export async function readConfiguredPair(certFile: string, keyFile: string): Promise<TlsMaterial> {
  try {
    const [cert, key] = await Promise.all([readFile(certFile, "utf8"), readFile(keyFile, "utf8")]);
    return checkPair(cert, key, certFile, keyFile);
  } catch (error) {
    if (error instanceof M365MailError) throw error;
    throw new M365MailError(
      "CONFIG_INVALID",
      `cannot read the listener's TLS files ${certFile} / ${keyFile}`,
      {
        source: "bridge",
        cause: error,
        hint: "Check listeners[].tls.certFile and keyFile, or remove them to use a generated certificate.",
      },
    );
  }
}

/**
 * A configured pair, checked before any listener uses it: a renewal that wrote a new certificate beside an
 * old key (or the reverse) is refused here with both file names, not by OpenSSL in the middle of a reload.
 */
function checkPair(cert: string, key: string, certFile: string, keyFile: string): TlsMaterial {
  const refused = (message: string, cause?: unknown) =>
    new M365MailError("CONFIG_INVALID", message, {
      source: "bridge",
      ...(cause ? { cause } : {}),
      hint: "Point listeners[].tls.certFile at the PEM certificate (or full chain) and keyFile at its private key, or remove both to use a generated certificate.",
    });
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (error) {
    throw refused(`${certFile} does not hold a PEM certificate`, error);
  }
  let matches: boolean;
  try {
    matches = x509.checkPrivateKey(createPrivateKey(key));
  } catch (error) {
    throw refused(`${keyFile} does not hold a PEM private key`, error);
  }
  if (!matches) throw refused(`the key in ${keyFile} does not belong to the certificate in ${certFile}`);
  return { cert, key, certPath: certFile, generated: false, expiresAt: new Date(x509.validTo) };
}

async function readOrGenerate(
  certPath: string,
  keyPath: string,
  options: { hosts?: readonly string[]; logger: Logger },
  failed: (error: unknown) => M365MailError,
): Promise<TlsMaterial> {
  try {
    const [cert, key] = await Promise.all([readFile(certPath, "utf8"), readFile(keyPath, "utf8")]);
    const x509 = new X509Certificate(cert);
    // A pair left half-replaced (a crash between the two files, in an older version) is made anew.
    if (
      x509.checkPrivateKey(createPrivateKey(key)) &&
      new Date(x509.validTo).getTime() > Date.now() + 7 * 86_400_000
    )
      return { cert, key, certPath, generated: false, expiresAt: new Date(x509.validTo) };
  } catch {
    // None yet (or unreadable): make one.
  }
  try {
    const {
      key: privateKey,
      cert: certPem,
      expiresAt,
    } = selfSignedCertificate({
      days: 825,
      hosts: options.hosts ?? [],
    });
    // Each file replaced whole (temporary file + rename): a reader never sees half of one.
    const suffix = `.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
    await writeFile(keyPath + suffix, privateKey, { mode: 0o600 });
    await chmod(keyPath + suffix, 0o600);
    await writeFile(certPath + suffix, certPem);
    await rename(keyPath + suffix, keyPath);
    await rename(certPath + suffix, certPath);
    options.logger.info(
      `generated a self-signed certificate for the bridge's TLS listeners: ${certPath} — clients that check certificates must trust this file (e.g. copy it to /usr/local/share/ca-certificates/m365-bridge.crt and run update-ca-certificates), or configure listeners[].tls with your own`,
    );
    return { cert: certPem, key: privateKey, certPath, generated: true, expiresAt };
  } catch (error) {
    throw failed(error);
  }
}

/**
 * A new RSA key and a self-signed certificate (its own CA) for localhost, this host's name, loopback and
 * `hosts`, valid from an hour ago for `days`.
 */
export function selfSignedCertificate(options: { days: number; hosts: readonly string[] }): {
  key: string;
  cert: string;
  expiresAt: Date;
} {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", {
    modulusLength: 2048,
    publicKeyEncoding: { type: "spki", format: "pem" },
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
  });
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(publicKey);
  const serial = randomBytes(16);
  serial[0] = serial[0]! & 0x7f;
  cert.serialNumber = serial.toString("hex");
  cert.validity.notBefore = new Date(Date.now() - 3_600_000);
  cert.validity.notAfter = new Date(Date.now() + options.days * 86_400_000);
  const attrs = [{ name: "commonName", value: "m365-mail bridge" }];
  cert.setSubject(attrs);
  cert.setIssuer(attrs);
  const names = new Set(
    ["localhost", hostname(), ...options.hosts].filter((h) => h && h !== "0.0.0.0" && h !== "::"),
  );
  const ips = new Set(["127.0.0.1", "::1", ...[...names].filter((n) => isIP(n) !== 0)]);
  cert.setExtensions([
    { name: "basicConstraints", cA: true },
    { name: "keyUsage", digitalSignature: true, keyEncipherment: true, keyCertSign: true },
    { name: "extKeyUsage", serverAuth: true },
    {
      name: "subjectAltName",
      altNames: [
        ...[...names].filter((n) => isIP(n) === 0).map((value) => ({ type: 2, value })),
        ...[...ips].map((ip) => ({ type: 7, ip })),
      ],
    },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(privateKey) as forge.pki.rsa.PrivateKey, forge.md.sha256.create());
  return { key: privateKey, cert: forge.pki.certificateToPem(cert), expiresAt: cert.validity.notAfter };
}
