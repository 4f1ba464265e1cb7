import { type RopcTokenProviderOptions, ropcTokenProvider } from "@m365-mail/auth-ropc";
import type { MessageSummary, TokenProvider } from "@m365-mail/core";
import {
  type Emulator,
  type GraphPart,
  graphPart,
  startTestEmulator,
  tokenProviderOptions,
} from "@m365-mail/emulator";
import { type GraphTransport, type GraphTransportOptions, graphTransport } from "../src/index.js";

export const SUPPORT = "support@contoso.com";
export const SHARED = "shared@contoso.com";

export interface EmulatorFixture {
  emulator: Emulator;
  graph: GraphPart;
  providers: TokenProvider[];
  transports: GraphTransport[];
  auth(options?: Partial<RopcTokenProviderOptions>): TokenProvider;
  transport(options?: Partial<GraphTransportOptions>): GraphTransport;
  stop(): Promise<void>;
}

/** The emulator with its Graph part in a fresh data dir, plus factories that clean up after themselves. */
export async function startGraphEmulator(
  graphOptions: Parameters<typeof graphPart>[0] = {},
): Promise<EmulatorFixture> {
  const graph = graphPart(graphOptions);
  const emulator = await startTestEmulator({ prefix: "transport-graph-emu-", parts: [graph] });
  const fixture: EmulatorFixture = {
    emulator,
    graph,
    providers: [],
    transports: [],
    auth(options = {}) {
      const provider = ropcTokenProvider({
        ...tokenProviderOptions(emulator, SUPPORT),
        engine: "http",
        ...options,
      });
      fixture.providers.push(provider);
      return provider;
    },
    transport(options = {}) {
      const transport = graphTransport({
        auth: options.auth ?? fixture.auth(),
        ca: emulator.caPem,
        watchIntervalMs: 300,
        sentItemsLookupMs: 3000,
        ...options,
      });
      fixture.transports.push(transport);
      return transport;
    },
    async stop() {
      await Promise.allSettled(fixture.transports.map((t) => t.close()));
      await Promise.allSettled(fixture.providers.map((p) => p.dispose?.()));
      await emulator.stop();
    },
  };
  return fixture;
}

/** Every message in a folder whose subject is exactly `subject`. */
export async function withSubject(
  t: GraphTransport,
  subject: string,
  folder = "inbox",
): Promise<MessageSummary[]> {
  const found: MessageSummary[] = [];
  for await (const m of t.listMessages({ folder, pageSize: 100 })) if (m.subject === subject) found.push(m);
  return found;
}
