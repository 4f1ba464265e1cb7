import type { Logger } from "@m365-mail/core";
import type { ListenerConfig } from "./config-schema.js";
import type { FrontDoor } from "./front-door.js";

/**
 * Binds a prepared listener and starts serving; may be called again to start it anew. `port` overrides the
 * configured one (a port-0 listener started again on the port it had).
 */
export type BindListener = (port?: number) => Promise<FrontDoor>;

/**
 * Loads everything a listener needs that can fail without touching a port (TLS material, options) and
 * returns the function that binds it.
 */
export type PrepareListener = (listener: ListenerConfig) => Promise<BindListener>;

export interface RunningListener {
  readonly config: ListenerConfig;
  readonly door: FrontDoor;
  /** Starts the same listener again (a rollback after its successor failed to bind). */
  readonly bind: BindListener;
}

export interface ListenerSetOptions {
  readonly logger: Logger;
  /** How long the open sessions of a listener a reload replaced or removed get to finish. @default 30_000 */
  readonly drainMs?: number;
}

export interface ListenerSet {
  /** The listeners accepting connections, in config order. */
  readonly running: readonly RunningListener[];
  /** Listeners that stopped accepting and whose open sessions are still finishing. */
  readonly draining: readonly FrontDoor[];
  /**
   * Makes the running set match `wanted`, all or nothing. Listeners whose settings are unchanged keep
   * running; new ones are bound (on ports no listener holds) before anything running is touched; a
   * listener whose port a changed one holds stops accepting just before its successor binds, and its
   * open sessions drain in the background. Only when every listener is bound does `commit` run (the rest
   * of the new settings); then the removed ones stop accepting. When a bind or `commit` throws, the
   * listeners it bound are closed, the replaced ones are started again, and the error is rethrown.
   */
  replace(wanted: readonly ListenerConfig[], prepare: PrepareListener, commit?: () => void): Promise<void>;
  /** Stops accepting everywhere; open sessions (draining ones too) get up to `drainMs` to finish. */
  close(drainMs: number): Promise<void>;
}

const DEFAULT_DRAIN_MS = 30_000;

const keyOf = (l: ListenerConfig) => JSON.stringify(l);
/** True when a reload keeps a listener with these settings running (as `replace` matches them). */
export const sameListenerSettings = (a: ListenerConfig, b: ListenerConfig) =>
  a === b || keyOf(a) === keyOf(b);
const where = (r: RunningListener) =>
  `the ${r.config.protocol} listener on ${r.door.address.host}:${r.door.address.port}`;

/** The bridge's listeners across reloads: what `running` lists is what is listening. */
export function createListenerSet(options: ListenerSetOptions): ListenerSet {
  const log = options.logger;
  const drainMs = options.drainMs ?? DEFAULT_DRAIN_MS;
  let running: RunningListener[] = [];
  const draining = new Map<FrontDoor, Promise<void>>();

  /** Stops accepting at once (the port is free when this returns); sessions finish in the background. */
  const retire = (r: RunningListener, why: string) => {
    log.info(`reload: ${where(r)} ${why}; its open sessions get up to ${drainMs} ms`);
    const done = r.door
      .close({ drainMs })
      .catch((error: unknown) => log.warn(`closing ${where(r)} failed`, { error }))
      .finally(() => draining.delete(r.door));
    draining.set(r.door, done);
  };

  return {
    get running() {
      return running;
    },
    get draining() {
      return [...draining.keys()];
    },
    async replace(wanted, prepare, commit) {
      // Match by settings, one running listener per wanted one (two identical port-0 listeners are two).
      const unmatched = [...running];
      const plan = wanted.map((config) => {
        const i = unmatched.findIndex((r) => sameListenerSettings(r.config, config));
        return { config, kept: i >= 0 ? unmatched.splice(i, 1)[0] : undefined };
      });
      const stale = unmatched;
      // What can fail without a port (TLS material) fails here, while nothing has changed.
      const fresh: { config: ListenerConfig; bind: BindListener; at: number }[] = [];
      for (const [at, p] of plan.entries()) {
        if (!p.kept) fresh.push({ config: p.config, bind: await prepare(p.config), at });
      }
      const holder = (l: ListenerConfig) =>
        l.port === 0 ? undefined : stale.find((s) => s.door.address.port === l.port);
      const started = new Map<number, RunningListener>();
      const handedOver: RunningListener[] = [];
      try {
        // Ports no listener of ours holds first: one in use fails the reload before anything running is touched.
        for (const f of fresh) {
          if (!holder(f.config)) started.set(f.at, { config: f.config, door: await f.bind(), bind: f.bind });
        }
        // A changed listener on its old port: the old one stops accepting, the new one binds at once.
        for (const f of fresh) {
          const old = holder(f.config);
          if (!old) continue;
          if (!handedOver.includes(old)) {
            handedOver.push(old);
            retire(old, "stops accepting, a listener with the new settings takes its port");
          }
          started.set(f.at, { config: f.config, door: await f.bind(), bind: f.bind });
        }
        commit?.();
      } catch (error) {
        await Promise.all([...started.values()].map((r) => r.door.close({ drainMs: 0 })));
        // Their sessions keep draining on the old door; new connections get the old settings again.
        const back = new Map<RunningListener, RunningListener>();
        for (const old of handedOver) {
          try {
            back.set(old, { ...old, door: await old.bind(old.door.address.port) });
            log.warn(`reload failed: ${where(old)} was started again with its old settings`);
          } catch (restartError) {
            log.error(`reload failed, and ${where(old)} could not be started again`, { error: restartError });
          }
        }
        running = running.flatMap((r) => {
          if (!handedOver.includes(r)) return [r];
          const again = back.get(r);
          return again ? [again] : [];
        });
        throw error;
      }
      for (const old of stale)
        if (!handedOver.includes(old)) retire(old, "stops accepting (the reload changed or removed it)");
      running = plan.map((p, at) => p.kept ?? started.get(at)!);
    },
    async close(closeDrainMs) {
      const doors = [...running.map((r) => r.door), ...draining.keys()];
      running = [];
      // Asked again, a draining door may end its sessions sooner (the SMTP front door does; a relay
      // keeps the deadline of its first close).
      await Promise.all([
        ...doors.map((door) =>
          door
            .close({ drainMs: closeDrainMs })
            .catch((error: unknown) => log.warn("close failed", { error })),
        ),
        ...draining.values(),
      ]);
    },
  };
}
