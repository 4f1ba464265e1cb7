import { createHash, createPrivateKey, generateKeyPair, randomBytes, sign } from "node:crypto";
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { M365MailError, withFileLock } from "@m365-mail/core";
import forge from "node-forge";
import type { TlsMaterial } from "./context.js";

export interface EnsureTlsMaterialOptions {
  /** Folder holding `ca/ca.pem` and `ca/ca-key.pem`; created when missing. */
  dataDir: string;
  /** Extra DNS names for the server certificate (besides `localhost`). */
  dnsNames?: readonly string[];
  /** Extra IP addresses for the server certificate (besides 127.0.0.1 and ::1). */
  ipAddresses?: readonly string[];
}

const CA_SUBJECT = [
  { name: "commonName", value: "m365-mail emulator local CA" },
  { name: "organizationName", value: "m365-mail emulator" },
];

/** Default data folder: `$M365_EMULATOR_HOME`, else `./.m365-emulator` in the working directory. */
export function defaultDataDir(): string {
  return process.env.M365_EMULATOR_HOME || join(process.cwd(), ".m365-emulator");
}

/**
 * Creates the emulator's CA on first use and reuses it afterwards (clients trust it once), then issues a
 * fresh server certificate for 127.0.0.1, ::1 and localhost. node:crypto cannot build X.509
 * certificates, hence node-forge.
 */
export async function ensureTlsMaterial(options: EnsureTlsMaterialOptions): Promise<TlsMaterial> {
  const caDir = join(options.dataDir, "ca");
  const caPath = join(caDir, "ca.pem");
  const caKeyPath = join(caDir, "ca-key.pem");
  try {
    await mkdir(caDir, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw new M365MailError("CONFIG_INVALID", `cannot create the emulator's data folder ${caDir}`, {
      source: "emulator",
      cause: error,
      hint: "Pass a writable dataDir (--data-dir) or set M365_EMULATOR_HOME.",
    });
  }
  // Two emulators starting on one data folder (parallel test files) must end up with one CA.
  const ca = await withLock(
    join(caDir, "keys.lock"),
    async () => (await readCa(caPath, caKeyPath)) ?? createCa(caPath, caKeyPath),
  );
  const server = await issueCertificate(ca, {
    commonName: "localhost",
    dnsNames: ["localhost", ...(options.dnsNames ?? [])],
    ipAddresses: ["127.0.0.1", "::1", ...(options.ipAddresses ?? [])],
    days: 825,
    serverAuth: true,
  });
  return { caPem: ca.certPem, caPath, keyPem: server.keyPem, certPem: server.certPem };
}

interface CaMaterial {
  cert: forge.pki.Certificate;
  keyPem: string;
  certPem: string;
}

async function readCa(caPath: string, caKeyPath: string): Promise<CaMaterial | undefined> {
  let certPem: string;
  let keyPem: string;
  try {
    [certPem, keyPem] = await Promise.all([readFile(caPath, "utf8"), readFile(caKeyPath, "utf8")]);
  } catch {
    return undefined;
  }
  try {
    const cert = forge.pki.certificateFromPem(certPem);
    createPrivateKey(keyPem); // throws on a damaged key file
    // An expired CA would make every client fail with a TLS error: make a new one instead.
    if (cert.validity.notAfter.getTime() < Date.now() + 86_400_000) return undefined;
    return { cert, keyPem, certPem };
  } catch (error) {
    throw new M365MailError("CONFIG_INVALID", `the emulator CA in ${caPath} cannot be read`, {
      source: "emulator",
      cause: error,
      hint: "Delete the ca folder in the emulator's data folder; a new CA is created on the next start.",
    });
  }
}

async function createCa(caPath: string, caKeyPath: string): Promise<CaMaterial> {
  const keys = await generateKeys();
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = serialNumber();
  cert.validity.notBefore = new Date(Date.now() - 86_400_000);
  cert.validity.notAfter = new Date(Date.now() + 10 * 365 * 86_400_000);
  cert.setSubject(CA_SUBJECT);
  cert.setIssuer(CA_SUBJECT);
  cert.setExtensions([
    { name: "basicConstraints", cA: true, critical: true },
    { name: "keyUsage", keyCertSign: true, cRLSign: true, critical: true },
    { name: "subjectKeyIdentifier" },
  ]);
  signCertificate(cert, keys.privateKeyPem);
  const certPem = forge.pki.certificateToPem(cert);
  await writeFile(caKeyPath, keys.privateKeyPem, { mode: 0o600 });
  await chmod(caKeyPath, 0o600);
  await writeFile(caPath, certPem, { mode: 0o644 });
  return { cert, keyPem: keys.privateKeyPem, certPem };
}

export interface IssuedCertificate {
  keyPem: string;
  certPem: string;
  /** DER of the certificate, for `x5t` thumbprints and `x5c` chains. */
  der: Buffer;
}

interface IssueOptions {
  commonName: string;
  dnsNames?: readonly string[];
  ipAddresses?: readonly string[];
  days: number;
  serverAuth?: boolean;
}

async function issueCertificate(ca: CaMaterial, options: IssueOptions): Promise<IssuedCertificate> {
  const keys = await generateKeys();
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = serialNumber();
  cert.validity.notBefore = new Date(Date.now() - 3_600_000);
  cert.validity.notAfter = new Date(Date.now() + options.days * 86_400_000);
  cert.setSubject([{ name: "commonName", value: options.commonName }]);
  cert.setIssuer(ca.cert.subject.attributes);
  const altNames = [
    ...(options.dnsNames ?? []).map((value) => ({ type: 2, value })),
    ...(options.ipAddresses ?? []).map((ip) => ({ type: 7, ip })),
  ];
  cert.setExtensions([
    { name: "basicConstraints", cA: false },
    { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
    ...(options.serverAuth ? [{ name: "extKeyUsage", serverAuth: true }] : []),
    ...(altNames.length > 0 ? [{ name: "subjectAltName", altNames }] : []),
  ]);
  signCertificate(cert, ca.keyPem);
  const der = Buffer.from(forge.asn1.toDer(forge.pki.certificateToAsn1(cert)).getBytes(), "binary");
  return { keyPem: keys.privateKeyPem, certPem: forge.pki.certificateToPem(cert), der };
}

/**
 * The token-signing key and its certificate (Microsoft publishes signing keys as certificates: `x5t`,
 * `x5c`). Kept in `<dataDir>/signing/` so that tokens stay valid across restarts.
 */
export async function ensureSigningKey(
  dataDir: string,
): Promise<IssuedCertificate & { kid: string; x5t: string }> {
  const dir = join(dataDir, "signing");
  await mkdir(dir, { recursive: true, mode: 0o700 });
  return withLock(join(dir, "keys.lock"), () => readOrCreateSigningKey(dir));
}

async function readOrCreateSigningKey(
  dir: string,
): Promise<IssuedCertificate & { kid: string; x5t: string }> {
  const keyPath = join(dir, "signing-key.pem");
  const certPath = join(dir, "signing-cert.pem");
  let material: IssuedCertificate | undefined;
  try {
    const [keyPem, certPem] = await Promise.all([readFile(keyPath, "utf8"), readFile(certPath, "utf8")]);
    const cert = forge.pki.certificateFromPem(certPem);
    if (cert.validity.notAfter.getTime() > Date.now() + 86_400_000) {
      const der = Buffer.from(forge.asn1.toDer(forge.pki.certificateToAsn1(cert)).getBytes(), "binary");
      material = { keyPem, certPem, der };
    }
  } catch {
    material = undefined;
  }
  if (!material) {
    // Self-signed, as Microsoft's token-signing certificates are.
    const keys = await generateKeys();
    const cert = forge.pki.createCertificate();
    cert.setSubject([{ name: "commonName", value: "accounts.accesscontrol.windows.net" }]);
    cert.publicKey = keys.publicKey;
    const issued = issueWithKey(cert, keys, 5 * 365);
    material = issued;
    await writeFile(keyPath, issued.keyPem, { mode: 0o600 });
    await chmod(keyPath, 0o600);
    await writeFile(certPath, issued.certPem);
  }
  const x5t = createHash("sha1").update(material.der).digest("base64url");
  // Microsoft's kid equals x5t for v1-style keys.
  return { ...material, kid: x5t, x5t };
}

function issueWithKey(cert: forge.pki.Certificate, keys: KeyPair, days: number): IssuedCertificate {
  cert.serialNumber = serialNumber();
  cert.validity.notBefore = new Date(Date.now() - 3_600_000);
  cert.validity.notAfter = new Date(Date.now() + days * 86_400_000);
  cert.setIssuer(cert.subject.attributes);
  signCertificate(cert, keys.privateKeyPem);
  const der = Buffer.from(forge.asn1.toDer(forge.pki.certificateToAsn1(cert)).getBytes(), "binary");
  return { keyPem: keys.privateKeyPem, certPem: forge.pki.certificateToPem(cert), der };
}

function serialNumber(): string {
  // Positive, 16 bytes: a leading byte under 0x80 keeps the DER integer non-negative.
  const bytes = randomBytes(16);
  bytes[0] = bytes[0]! & 0x7f;
  return bytes.toString("hex");
}

interface KeyPair {
  privateKeyPem: string;
  publicKey: forge.pki.rsa.PublicKey;
}

const generateRsaKeyPair = promisify(generateKeyPair);

// node:crypto generates RSA keys natively and off the event loop (forge's pure-JS generation takes
// seconds per key); forge only builds the certificate around the public key.
async function generateKeys(): Promise<KeyPair> {
  const { privateKey, publicKey } = await generateRsaKeyPair("rsa", {
    modulusLength: 2048,
    publicKeyEncoding: { type: "spki", format: "pem" },
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
  });
  return {
    privateKeyPem: privateKey,
    publicKey: forge.pki.publicKeyFromPem(publicKey) as forge.pki.rsa.PublicKey,
  };
}

/** forge's `cert.sign` with node:crypto doing the RSA signature (forge's JS RSA costs ~50 ms a signature). */
function signCertificate(cert: forge.pki.Certificate, privateKeyPem: string): void {
  const signable = cert as forge.pki.Certificate & {
    tbsCertificate: forge.asn1.Asn1;
    signatureOid: string;
  };
  signable.signatureOid = signable.siginfo.algorithmOid = forge.pki.oids.sha256WithRSAEncryption!;
  // getTBSCertificate is public in forge but missing from its types.
  const pki = forge.pki as typeof forge.pki & {
    getTBSCertificate(c: forge.pki.Certificate): forge.asn1.Asn1;
  };
  signable.tbsCertificate = pki.getTBSCertificate(cert);
  const tbs = Buffer.from(forge.asn1.toDer(signable.tbsCertificate).getBytes(), "binary");
  signable.signature = sign("sha256", tbs, privateKeyPem).toString("binary");
}

/** Held while keys are read or created; a lock untouched for 30 s was left by a crash. */
function withLock<T>(lockPath: string, fn: () => Promise<T>): Promise<T> {
  return withFileLock(lockPath, fn, {
    waitMs: 20_000,
    staleMs: 30_000,
    onTimeout: () =>
      new M365MailError("CONFIG_INVALID", `the emulator's data folder is locked (${lockPath})`, {
        source: "emulator",
        hint: `Another emulator is creating its keys there; if none runs, delete ${lockPath}.`,
      }),
  });
}
