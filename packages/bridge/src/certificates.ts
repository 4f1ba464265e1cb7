import type { Logger } from "@m365-mail/core";
import { CERTIFICATE_WARNING_MS } from "./certificate-expiry.js";
import type { BridgeConfig, ListenerConfig } from "./config-schema.js";
import type { FrontDoor } from "./front-door.js";
import type { RunningListener } from "./listener-set.js";
import type { BridgeMetrics } from "./metrics.js";
import { loadTlsMaterial, type TlsMaterial } from "./tls-material.js";
import type { Webhook } from "./webhook.js";

/** How often a running bridge reads its certificates again (a renewal on disk, a generated one near its end). */
export const CERTIFICATE_CHECK_MS = 12 * 3_600_000;

export interface ListenerCertificates {
  /** The listener's key and certificate (undefined for a plain one), with a warning when it ends soon. */
  load(listener: ListenerConfig, settings: BridgeConfig): Promise<TlsMaterial | undefined>;
  /** Records what a bound listener presents. */
  presented(door: FrontDoor, material: TlsMaterial | undefined): void;
  /** What a listener presents now. */
  of(door: FrontDoor): TlsMaterial | undefined;
  /**
   * Reads the files of these running listeners again. Everything that can fail (an unreadable file, a key
   * that does not match) fails here, before anything changed; the returned function then gives each
   * listener whose certificate changed the new one (new connections get it, open sessions keep theirs).
   */
  prepareRenewal(running: readonly RunningListener[], settings: BridgeConfig): Promise<() => void>;
  /** Sets the expiry gauge to the listeners running now. */
  updateMetric(running: readonly RunningListener[]): void;
}

const label = (l: ListenerConfig, door?: FrontDoor) =>
  `${l.protocol} ${door ? `${door.address.host}:${door.address.port}` : `${l.host}:${l.port}`}`;

/** The certificates of the bridge's TLS listeners, renewed in place on reload and every 12 hours. */
export function createListenerCertificates(
  logger: Logger,
  metrics: BridgeMetrics,
  webhook: Pick<Webhook, "post">,
): ListenerCertificates {
  const presenting = new WeakMap<FrontDoor, TlsMaterial>();
  // One webhook event per certificate that ends soon (a renewed one is another certificate).
  const announced = new Set<string>();

  const load = async (l: ListenerConfig, settings: BridgeConfig, door?: FrontDoor) => {
    if (l.security === "plain") return undefined;
    const material = await loadTlsMaterial({
      ...(l.tls?.certFile ? { certFile: l.tls.certFile } : {}),
      ...(l.tls?.keyFile ? { keyFile: l.tls.keyFile } : {}),
      dataDir: settings.dataDir,
      hosts: [l.host],
      logger,
    });
    // A generated certificate is made anew before its end; a configured one is the operator's to renew.
    if (l.tls?.certFile) {
      const left = material.expiresAt.getTime() - Date.now();
      const when = material.expiresAt.toISOString();
      const ending = `${material.certPath}\n${when}`;
      if (left < CERTIFICATE_WARNING_MS && !announced.has(ending)) {
        announced.add(ending);
        webhook.post({
          type: "certificate-ending",
          listener: label(l, door),
          file: material.certPath,
          expiresAt: when,
          daysLeft: Math.floor(left / 86_400_000),
        });
      }
      if (left <= 0) {
        logger.error(
          `the certificate in ${material.certPath} for the ${label(l, door)} listener expired on ${when}: clients that check certificates refuse the bridge. Renew it, then reload the bridge (SIGHUP)`,
        );
      } else if (left < CERTIFICATE_WARNING_MS) {
        logger.warn(
          `the certificate in ${material.certPath} for the ${label(l, door)} listener expires on ${when}: renew it; the bridge presents the renewed files after a reload (SIGHUP) or within 12 hours`,
        );
      }
    }
    return material;
  };

  return {
    load: (l, settings) => load(l, settings),
    presented(door, material) {
      if (material) presenting.set(door, material);
    },
    of: (door) => presenting.get(door),
    async prepareRenewal(running, settings) {
      const changed: [RunningListener, TlsMaterial][] = [];
      for (const r of running) {
        const material = await load(r.config, settings, r.door);
        const before = presenting.get(r.door);
        if (material && (material.cert !== before?.cert || material.key !== before?.key))
          changed.push([r, material]);
      }
      return () => {
        for (const [r, material] of changed) {
          r.door.useCertificate({ key: material.key, cert: material.cert });
          presenting.set(r.door, material);
          logger.info(
            `the ${label(r.config, r.door)} listener presents a new certificate from ${material.certPath} (valid until ${material.expiresAt.toISOString()}) to new connections; open sessions keep theirs`,
          );
        }
      };
    },
    updateMetric(running) {
      metrics.clear("m365_bridge_tls_certificate_expiry_timestamp_seconds");
      for (const r of running) {
        const material = presenting.get(r.door);
        if (!material) continue;
        metrics.set(
          "m365_bridge_tls_certificate_expiry_timestamp_seconds",
          { listener: label(r.config, r.door), file: material.certPath },
          Math.floor(material.expiresAt.getTime() / 1000),
        );
      }
    },
  };
}
