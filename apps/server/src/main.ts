import { join } from "node:path";
import { isM365MailError } from "@m365-mail/core";
import type { Emulator } from "@m365-mail/emulator";
import { generateApiKey, hashApiKey, type StoredApiKey, storedKeyFor } from "./api-keys.js";
import { loadServerConfig, type M365Settings } from "./config.js";
import { startLocalEmulator } from "./emulator-mode.js";
import { consoleLogger } from "./logger.js";
import { type RunningServer, startServer } from "./start-server.js";

const HELP = `m365-mail sample server

  node dist/main.js --emulator         start the emulator in this process and serve its demo mailbox
  node dist/main.js                    serve a real tenant (M365_TENANT_ID, M365_CLIENT_ID, M365_USERNAME,
                                       M365_PASSWORD; API_KEYS) — see README.md for every variable
  node dist/main.js --new-api-key NAME print a new API key and the API_KEYS entry (its hash) for it
  --port N                             listen port (PORT, default 3000; 0 = a free port)
`;

async function main(argv: string[]): Promise<void> {
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(HELP);
    return;
  }
  const newKey = argv.indexOf("--new-api-key");
  if (newKey >= 0) {
    const name = argv[newKey + 1] ?? "default";
    const key = generateApiKey();
    process.stdout.write(
      `API key (give it to the client, store it nowhere else):\n  ${key}\nAPI_KEYS entry:\n  ${name}:${hashApiKey(key)}\n`,
    );
    return;
  }
  const config = loadServerConfig(process.env, argv);
  const logger = consoleLogger(config.logLevel);
  let emulator: Emulator | undefined;
  let m365: M365Settings;
  const extraApiKeys: StoredApiKey[] = [];
  let devKey: string | undefined;
  if (config.emulator) {
    const local = await startLocalEmulator(logger);
    emulator = local.emulator;
    // The emulator's demo user is a delegate of shared@contoso.com: M365_MAILBOX works here too.
    m365 = process.env.M365_MAILBOX ? { ...local.m365, mailbox: process.env.M365_MAILBOX } : local.m365;
    if (!local.imap) {
      config.transports = config.transports.filter((t) => t !== "imap");
      if (config.watchVia === "imap") config.watchVia = "graph";
      if (config.readVia === "imap") config.readVia = "graph";
    }
    if (!process.env.OUTBOX_PATH) config.outboxPath = join(emulator.dataDir, "server", "outbox.db");
    // A development key, printed once and kept only as a hash; the printed link hands it to the page.
    devKey = process.env.DEV_API_KEY ?? generateApiKey();
    extraApiKeys.push(storedKeyFor("dev", devKey, true));
  } else {
    m365 = config.m365!;
  }

  let server: RunningServer;
  try {
    server = await startServer({ config, m365, logger, extraApiKeys });
  } catch (error) {
    await emulator?.stop();
    throw error;
  }
  const lines = [
    `m365-mail server on ${server.url} (outbox: ${config.outbox}, transports: ${config.transports.join(", ")})`,
  ];
  lines.push(`  API docs: ${server.url}/docs`);
  if (devKey) {
    lines.push(`  emulator: ${emulator!.authorityHost}, mailbox ${m365.username}`);
    lines.push(`  dev API key: ${devKey}`);
    lines.push(`  web page:    ${server.url}/#key=${devKey}`);
  }
  process.stdout.write(`${lines.join("\n")}\n`);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info(`${signal}: shutting down`);
    const timer = setTimeout(() => process.exit(1), 30_000);
    timer.unref();
    await server.close().catch((error) => logger.error("shutdown failed", { error: String(error) }));
    await emulator?.stop().catch(() => undefined);
    process.exit(0);
  };
  process.on("SIGINT", () => void stop("SIGINT"));
  process.on("SIGTERM", () => void stop("SIGTERM"));
}

main(process.argv.slice(2)).catch((error) => {
  if (isM365MailError(error)) {
    process.stderr.write(`${error.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`${(error as Error)?.stack ?? error}\n`);
  process.exit(1);
});
