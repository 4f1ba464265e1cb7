import { X509Certificate } from "node:crypto";
import { createServer } from "node:https";
import { isIP } from "node:net";
import { CLOUDS, type Logger, M365MailError, safeLogger } from "@m365-mail/core";
import { AdfsService, createAdfsHandler } from "./adfs/index.js";
import { createAdmin, type EmulatorAdmin } from "./admin.js";
import type { EmulatorContext, Protocol } from "./context.js";
import { createRequestCounters } from "./counters.js";
import { defaultDirectory, loadDirectory, validateDirectory } from "./default-directory.js";
import type { Directory } from "./directory.js";
import { DirectoryStore } from "./directory-store.js";
import { DeviceCodeStore } from "./entra/device-codes.js";
import { openIdConfiguration } from "./entra/discovery.js";
import { createEntraHandler } from "./entra/entra-handler.js";
import { createLoopDetector, type LoopDetectionOptions } from "./entra/loop-detector.js";
import { ProtocolGate } from "./entra/protocol-gate.js";
import { createSmartLockout, type SmartLockoutOptions } from "./entra/smart-lockout.js";
import { TokenService } from "./entra/tokens.js";
import { createFaultRegistry } from "./faults.js";
import { closeServer, listen } from "./https-server.js";
import type { EmulatorCloud, EmulatorPart, PartInfo } from "./part.js";
import { SendingQuota } from "./sending-quota.js";
import { defaultDataDir, ensureSigningKey, ensureTlsMaterial } from "./tls.js";

export interface StartEmulatorOptions {
  /** The directory, or the path of a directory JSON file. @default the demo directory (contoso.com) */
  directory?: Directory | string;
  /** Where the CA, signing key and parts' data live. @default $M365_EMULATOR_HOME or ./.m365-emulator */
  dataDir?: string;
  /** Interface to listen on. @default "127.0.0.1" */
  host?: string;
  /** Port of the Entra ID part (HTTPS). @default 0 (a free port) */
  entraPort?: number;
  /** Port of the emulated AD FS (HTTPS, the federated domains' STS). @default 0 (a free port) */
  adfsPort?: number;
  /** Graph, SMTP, Dovecot parts, started in order after Entra ID. @default [] */
  parts?: readonly EmulatorPart[];
  /** Receives the emulator's log lines (redacted). @default silent */
  logger?: Logger;
  /** AADSTS50196 threshold. @default { maxRequests: 200, windowSeconds: 10 } */
  loopDetection?: LoopDetectionOptions;
  /** Entra's smart lockout (AADSTS50053 after failed sign-ins). @default { threshold: 10, lockoutSeconds: 60 } */
  smartLockout?: SmartLockoutOptions;
}

export interface Emulator {
  /** HTTPS origin of Entra ID, e.g. "https://127.0.0.1:44443": use as authority host. */
  readonly authorityHost: string;
  /** `${authorityHost}/${tenantId}`. */
  readonly authority: string;
  /** HTTPS origin of the emulated AD FS, e.g. "https://127.0.0.1:44444" (MEX at /adfs/services/trust/mex). */
  readonly adfsOrigin: string;
  /** First tenant of the directory. */
  readonly tenantId: string;
  /** First app registration of that tenant. */
  readonly clientId: string;
  /** Path of the CA certificate clients must trust (NODE_EXTRA_CA_CERTS). */
  readonly caPath: string;
  readonly caPem: string;
  readonly dataDir: string;
  /** A cloud preset for m365-mail clients: Microsoft's scope URIs, the emulator's hosts. */
  readonly cloud: EmulatorCloud;
  /** The tenant's OpenID configuration as a JSON string, for msal's `authorityMetadata`. */
  readonly authorityMetadata: string;
  readonly context: EmulatorContext;
  readonly admin: EmulatorAdmin;
  /** What each part reported, by part name. */
  readonly parts: Readonly<Record<string, PartInfo>>;
  /** Environment variables a client process needs. */
  env(): Record<string, string>;
  /** Stops the parts (last first) and the Entra server. */
  stop(): Promise<void>;
}

/** Starts the offline Microsoft 365: Entra ID (token endpoint, discovery, introspection, admin API) and the given parts. */
export async function startEmulator(options: StartEmulatorOptions = {}): Promise<Emulator> {
  const log = safeLogger(options.logger, "emulator");
  const host = options.host ?? "127.0.0.1";
  const dataDir = options.dataDir ?? defaultDataDir();
  const directory =
    typeof options.directory === "string"
      ? await loadDirectory(options.directory)
      : options.directory
        ? validateDirectory(options.directory)
        : defaultDirectory();
  const store = new DirectoryStore(directory);
  const firstTenant = store.tenants()[0]!;
  const firstApp = firstTenant.apps[0];

  const extraNames =
    host === "127.0.0.1" || host === "::1" || host === "localhost" || host === "0.0.0.0" ? [] : [host];
  const [tls, signing] = await Promise.all([
    ensureTlsMaterial({
      dataDir,
      dnsNames: extraNames.filter((n) => isIP(n) === 0),
      ipAddresses: extraNames.filter((n) => isIP(n) !== 0),
    }),
    ensureSigningKey(dataDir),
  ]);

  let origin = "";
  const counters = createRequestCounters();
  const faults = createFaultRegistry();
  const loops = createLoopDetector(options.loopDetection);
  const lockout = createSmartLockout(options.smartLockout);
  const tokens = new TokenService(signing, store, () => origin);
  const deviceCodes = new DeviceCodeStore();
  const gate = new ProtocolGate(tokens, store, counters);
  let adfsOrigin = "";
  // AD FS signs its assertions with the emulator's TLS key (a certificate of the emulator's CA).
  const adfs = new AdfsService(
    store,
    counters,
    { keyPem: tls.keyPem, certPem: tls.certPem, der: Buffer.from(new X509Certificate(tls.certPem).raw) },
    () => adfsOrigin,
  );
  const revokeListeners = new Set<(upn: string) => void>();
  const loginListeners = new Set<(login: { upn: string; protocol: Protocol; expiresAt: Date }) => void>();
  const runningParts = new Map<string, EmulatorPart>();
  const admin = createAdmin({
    parts: runningParts,
    deviceCodes,
    store,
    tokens,
    faults,
    counters,
    loops,
    lockout,
    gate,
    adfs,
    onRevoke: (upn) => {
      for (const listener of revokeListeners) {
        try {
          listener(upn);
        } catch (error) {
          log.warn("a token-revocation listener failed", { error });
        }
      }
    },
  });

  const server = createServer(
    { key: tls.keyPem, cert: tls.certPem },
    createEntraHandler({
      origin: () => origin,
      onProtocolLogin: (login) => {
        for (const listener of loginListeners) {
          try {
            listener(login);
          } catch (error) {
            log.warn("a protocol-login listener failed", { error });
          }
        }
      },
      store,
      tokens,
      gate,
      faults,
      counters,
      loops,
      lockout,
      admin,
      deviceCodes,
      log,
      adfs,
    }),
  );
  const port = await listen(server, host, options.entraPort ?? 0, {
    name: "the emulator",
    source: "emulator",
    portHint: "--port / entraPort",
  });
  origin = `https://${isIP(host) === 6 ? `[${host}]` : host === "0.0.0.0" ? "127.0.0.1" : host}:${port}`;
  log.info(`Entra ID listening on ${origin}`);

  const adfsServer = createServer(
    { key: tls.keyPem, cert: tls.certPem },
    createAdfsHandler({ adfs, faults, counters, log }),
  );
  // "Unreachable" (admin switch): the connection is dropped before TLS, as a firewall reset would.
  adfsServer.on("connection", (socket) => {
    if (!adfs.settings.reachable) socket.destroy();
  });
  let adfsPort: number;
  try {
    adfsPort = await listen(adfsServer, host, options.adfsPort ?? 0, {
      name: "the emulator's AD FS",
      source: "emulator",
      portHint: "--adfs-port / adfsPort",
    });
  } catch (error) {
    await closeServer(server);
    throw error;
  }
  adfsOrigin = `${origin.slice(0, origin.lastIndexOf(":"))}:${adfsPort}`;
  log.info(`AD FS listening on ${adfsOrigin}`);

  const context: EmulatorContext = {
    host,
    dataDir,
    tls,
    authorityHost: origin,
    tenantId: firstTenant.id,
    directory: () => store.get(),
    findUser: (upn) => store.findUser(upn)?.user,
    verifyAccessToken: (token) => tokens.verifyAccessToken(token),
    authorizeProtocol: (token, protocol, mailbox) => gate.authorize(token, protocol, mailbox),
    onTokensRevoked(listener) {
      revokeListeners.add(listener);
      return () => revokeListeners.delete(listener);
    },
    onProtocolLogin(listener) {
      loginListeners.add(listener);
      return () => loginListeners.delete(listener);
    },
    faults,
    counters,
    sendingQuota: new SendingQuota(),
    log: (message) => log.info(message),
  };

  const started: EmulatorPart[] = [];
  const partInfo: Record<string, PartInfo> = {};
  const stopAll = async () => {
    for (const part of [...started].reverse()) {
      try {
        await part.stop();
      } catch (error) {
        log.warn(`stopping part ${part.name} failed`, { error });
      }
    }
    started.length = 0;
    runningParts.clear();
    await closeServer(adfsServer);
    await closeServer(server);
  };
  for (const part of options.parts ?? []) {
    if (partInfo[part.name]) {
      await stopAll();
      throw new M365MailError("CONFIG_INVALID", `two emulator parts are named "${part.name}"`, {
        source: "emulator",
        hint: "Pass each part once in startEmulator({ parts }).",
      });
    }
    try {
      partInfo[part.name] = await part.start(context);
      started.push(part);
      runningParts.set(part.name, part);
    } catch (error) {
      if (error instanceof M365MailError && error.code === "NOT_SUPPORTED") {
        // A missing prerequisite (Dovecot not installed): say so and run the rest.
        log.warn(`part ${part.name} skipped: ${error.message}`);
        partInfo[part.name] = { skipped: error.message };
        continue;
      }
      await stopAll();
      throw new M365MailError("CONNECTION_FAILED", `the emulator part "${part.name}" failed to start`, {
        source: "emulator",
        cause: error,
        hint: "See the cause; start the emulator without that part to run the rest.",
      });
    }
  }

  // Protocols no part serves point at port 0 on the emulator's host: a client fails at once instead of
  // reaching Microsoft's real servers.
  const notServed = { host: new URL(origin).hostname.replace(/^\[|\]$/g, ""), port: 0 };
  let cloud: EmulatorCloud = {
    ...CLOUDS.global,
    name: "global",
    authorityHost: origin,
    imap: notServed,
    pop3: notServed,
    smtp: notServed,
  };
  for (const info of Object.values(partInfo)) if (info.cloud) cloud = { ...cloud, ...info.cloud };

  let stopped: Promise<void> | undefined;
  return {
    authorityHost: origin,
    authority: `${origin}/${firstTenant.id}`,
    adfsOrigin,
    tenantId: firstTenant.id,
    clientId: firstApp?.clientId ?? "",
    caPath: tls.caPath,
    caPem: tls.caPem,
    dataDir,
    cloud,
    authorityMetadata: JSON.stringify(openIdConfiguration(origin, firstTenant.id)),
    context,
    admin,
    parts: partInfo,
    env() {
      const env: Record<string, string> = {
        M365_TENANT_ID: firstTenant.id,
        M365_CLIENT_ID: firstApp?.clientId ?? "",
        M365_AUTHORITY_HOST: origin,
        M365_EMULATOR_URL: origin,
        M365_EMULATOR_ADFS_URL: adfsOrigin,
        NODE_EXTRA_CA_CERTS: tls.caPath,
      };
      for (const info of Object.values(partInfo)) Object.assign(env, info.env ?? {});
      return env;
    },
    stop() {
      stopped ??= stopAll();
      return stopped;
    },
  };
}
