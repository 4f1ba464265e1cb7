import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  hintFor,
  isM365MailError,
  type MailEvent,
  type MessageSummary,
  registerSecret,
  type Transport,
} from "@m365-mail/core";
import type { Emulator } from "@m365-mail/emulator";
import { type Command, type CommandContext, stringFlag } from "../command.js";
import { type DoctorReport, runDoctor } from "../doctor-checks.js";
import { checkLine } from "../doctor-render.js";
import { dovecotStatus, emulatorConfig, loadEmulator, startFullEmulator } from "../emulator-runner.js";
import { EXIT } from "../exit-codes.js";
import { formatDate } from "../format.js";
import { errorJson } from "../output.js";
import { openSession, type Session, type Via } from "../session.js";
import { findWithPassword, MFA_LOGIN, MFA_USER, sendWithPassword, startDemoBridge } from "./demo-bridge.js";

const USER = "support@contoso.com";
const WAIT_MS = 30_000;

export interface DemoStep {
  name: string;
  via: string;
  status: "pass" | "fail" | "skip";
  detail: string;
  error?: Record<string, unknown>;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });

/** Polls until `find` returns something, for mail that is accepted now and delivered a moment later. */
async function eventually<T>(
  find: () => Promise<T | undefined>,
  what: string,
  signal: AbortSignal,
): Promise<T> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const found = await find();
    if (found !== undefined) return found;
    if (Date.now() > deadline || signal.aborted)
      throw new Error(`${what} did not show up within ${WAIT_MS / 1000} s`);
    await sleep(500, signal);
  }
}

async function findBySubject(
  transport: Transport,
  subject: string,
  signal: AbortSignal,
): Promise<MessageSummary | undefined> {
  for await (const message of transport.listMessages!({ folder: "inbox", limit: 25 }, { signal })) {
    if (message.subject === subject) return message;
  }
  return undefined;
}

/**
 * Starts a watcher, then delivers fresh messages until the watcher reports one: the watcher
 * only reports mail that arrives after it is set up, and "set up" is not observable from outside.
 */
async function watchSeesNewMail(
  session: Session,
  via: "imap" | "graph",
  tag: string,
  signal: AbortSignal,
): Promise<string> {
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  signal.addEventListener("abort", onAbort, { once: true });
  const subjects = new Set<string>();
  const iterator = session.mailbox.transport(via).watch!({ folder: "inbox" }, { signal: stop.signal })[
    Symbol.asyncIterator
  ]();
  const started = Date.now();
  try {
    let next = iterator.next();
    for (let attempt = 1; Date.now() - started < WAIT_MS; attempt++) {
      const subject = `m365-mail demo ${tag}: watch over ${via} #${attempt}`;
      subjects.add(subject);
      await session.mailbox.send(
        { to: USER, subject, text: "Delivered while a watcher was waiting." },
        { via: "smtp" },
      );
      const deadline = Date.now() + (via === "graph" ? 4000 : 2500);
      while (Date.now() < deadline) {
        const result = await Promise.race([next, sleep(deadline - Date.now(), signal).then(() => undefined)]);
        if (!result) break;
        if (result.done) throw new Error("the watcher ended early");
        const event: MailEvent = result.value;
        next = iterator.next();
        if (event.type === "created" && subjects.has(event.message.subject)) {
          return `saw "${event.message.subject}" ${((Date.now() - started) / 1000).toFixed(1)} s after starting to watch`;
        }
      }
    }
    throw new Error(`no new message was reported within ${WAIT_MS / 1000} s`);
  } finally {
    stop.abort();
    signal.removeEventListener("abort", onAbort);
    await iterator.return?.(undefined).catch(() => undefined);
  }
}

export const demoCommand: Command = {
  name: "demo",
  summary: "start the emulator, run doctor and every capability against it, print a summary, stop",
  options: {
    "data-dir": { type: "string" },
    "no-dovecot": { type: "boolean" },
  },
  help: `Usage: m365-mail demo [--data-dir <dir>] [--no-dovecot] [--json]

Runs everything offline: starts the emulator (Entra ID, Graph, SMTP, and IMAP/POP3 through Dovecot when
installed), runs doctor as support@contoso.com, then every capability — calendar and folders over Graph,
send over Graph and over SMTP, read over IMAP and POP3, watch (IMAP IDLE and Graph delta) seeing a newly
delivered message — then a plain-password SMTP client and IMAP client through \`m365-mail bridge\` — prints a
summary and stops what it started.

Options:
  --data-dir <dir>   keep the emulator's CA and mailboxes there (default: a temporary folder, removed after)
  --no-dovecot       skip IMAP and POP3
  --json             { ok, doctor, steps: [{ name, via, status, detail }] }

Exit code: 0 when every capability worked (skipped ones aside), 1 otherwise.`,
  async run(ctx: CommandContext): Promise<number> {
    const { out, signal } = ctx;
    const p = out.paint;
    const keptDir = stringFlag(ctx.flags, "data-dir");
    const dataDir = keptDir ?? (await mkdtemp(join(tmpdir(), "m365-mail-demo-")));
    const { DEMO_PASSWORD } = await loadEmulator();
    const dovecot = await dovecotStatus();
    const useDovecot = ctx.flags["no-dovecot"] !== true && dovecot.installed;
    registerSecret(DEMO_PASSWORD);
    const say = (text: string) => {
      if (!out.json) out.out(text);
    };

    const progress = out.progress("starting the emulator (Entra ID, Graph, SMTP, IMAP/POP3)");
    let emulator: Emulator | undefined;
    let session: Session | undefined;
    const steps: DemoStep[] = [];
    let doctor: DoctorReport | undefined;
    try {
      emulator = await startFullEmulator({
        dataDir,
        dovecot: useDovecot,
        verbose: ctx.flags.verbose === true,
      });
      const imapRunning = Boolean(emulator.parts.dovecot && !emulator.parts.dovecot.skipped);
      const skipReason = !dovecot.installed
        ? `skipped: Dovecot is not installed — install it with: ${dovecot.install}`
        : useDovecot
          ? `skipped: ${emulator.parts.dovecot?.skipped ?? "the IMAP/POP3 part did not start"}`
          : "skipped (--no-dovecot)";
      progress.stop();
      say(`${p.bold("m365-mail demo")} — an offline Microsoft 365, signed in as ${USER} over ROPC`);
      say(`  Entra ID ${emulator.authority}`);
      say(`  Graph    ${emulator.cloud.graphOrigin}/v1.0`);
      say(`  SMTP     ${emulator.cloud.smtp.host}:${emulator.cloud.smtp.port}`);
      say(
        imapRunning
          ? `  IMAP     ${emulator.cloud.imap.host}:${emulator.cloud.imap.port}   POP3 ${emulator.cloud.pop3.host}:${emulator.cloud.pop3.port}`
          : `  IMAP/POP3 ${p.warn(skipReason)}`,
      );
      say("");

      const config = emulatorConfig(emulator, USER, DEMO_PASSWORD);
      const transports: Via[] = imapRunning ? ["graph", "smtp", "imap", "pop3"] : ["graph", "smtp"];
      session = await openSession(
        config,
        { tenantId: emulator.tenantId, clientId: emulator.clientId, username: USER, password: DEMO_PASSWORD },
        { transports, verbose: ctx.flags.verbose === true, graphWatchIntervalMs: 1000 },
      );
      const live = session;

      // 1. doctor, exactly as `m365-mail doctor --pop3` runs it.
      say(p.bold("1. doctor"));
      const doctorProgress = out.progress("doctor");
      let number = 0;
      doctor = await runDoctor(config, live, {
        pop3: true,
        ...(imapRunning ? {} : { unavailable: { imap: skipReason, pop3: skipReason } }),
        signal,
        onStep: (label) => doctorProgress.update(label),
        onCheck: (check) => {
          number++;
          for (const line of checkLine(check, out, number)) say(line);
        },
      });
      doctorProgress.stop();
      say("");

      // 2. every capability.
      say(p.bold("2. capabilities"));
      const tag = randomBytes(3).toString("hex");
      const run = async (name: string, via: string, action: () => Promise<string>, needsImap = false) => {
        if (needsImap && !imapRunning) {
          steps.push({ name, via, status: "skip", detail: skipReason });
          say(`  ${p.dim("–")} ${name.padEnd(22)} ${via.padEnd(6)} ${p.warn(skipReason)}`);
          return;
        }
        const stepProgress = out.progress(`${name} over ${via}`);
        try {
          const detail = await action();
          steps.push({ name, via, status: "pass", detail });
          stepProgress.stop();
          say(`  ${p.ok("✓")} ${name.padEnd(22)} ${via.padEnd(6)} ${detail}`);
        } catch (error) {
          stepProgress.stop();
          const message = error instanceof Error ? error.message : String(error);
          steps.push({ name, via, status: "fail", detail: message, error: errorJson(error) });
          say(`  ${p.fail("✗")} ${name.padEnd(22)} ${via.padEnd(6)} ${message}`);
          if (isM365MailError(error) && error.hint) say(`       ${p.bold("fix:")} ${hintFor(error, "cli")}`);
        }
      };
      const graph = live.mailbox.transport("graph");
      const subjects = {
        graph: `m365-mail demo ${tag}: sent over Graph`,
        smtp: `m365-mail demo ${tag}: sent over SMTP`,
      };

      await run("calendar", "Graph", async () => {
        const start = new Date();
        const end = new Date(start.getTime() + 7 * 86_400_000);
        const events = [];
        for await (const event of graph.listEvents({ start, end }, { signal })) events.push(event);
        events.sort((a, b) => a.start.getTime() - b.start.getTime());
        const first = events[0];
        return `${events.length} event(s) in the next 7 days${first ? `; next: "${first.subject}" at ${formatDate(first.start)}` : ""}`;
      });
      await run("folders", "Graph", async () => {
        const folders = await graph.listFolders({ signal });
        const inbox = folders.find((f) => f.specialUse === "inbox");
        return `${folders.length} folders (${folders
          .map((f) => f.name)
          .slice(0, 6)
          .join(", ")}${folders.length > 6 ? ", …" : ""}); Inbox: ${inbox?.totalCount ?? "?"} message(s)`;
      });
      await run("send", "Graph", async () => {
        const result = await live.mailbox.send(
          {
            to: USER,
            cc: "alice@contoso.com",
            subject: subjects.graph,
            text: "Sent with POST /me/sendMail.",
          },
          { via: "graph", signal },
        );
        return `"${subjects.graph}" to ${USER}, cc alice@ (${result.messageId})`;
      });
      await run("send", "SMTP", async () => {
        const result = await live.mailbox.send(
          { to: USER, subject: subjects.smtp, text: "Sent with SMTP AUTH XOAUTH2." },
          { via: "smtp", signal },
        );
        return `"${subjects.smtp}" to ${USER} (${result.messageId})`;
      });
      await run("read", "Graph", async () => {
        const found = await eventually(
          () => findBySubject(graph, subjects.smtp, signal),
          "the SMTP message in the Inbox (Graph)",
          signal,
        );
        const message = await graph.getMessage(found.id, { signal });
        return `found the SMTP message in the Inbox: "${(message.text ?? "").trim()}"`;
      });
      await run(
        "read",
        "IMAP",
        async () => {
          const imap = live.mailbox.transport("imap");
          const found = await eventually(
            () => findBySubject(imap, subjects.graph, signal),
            "the Graph message over IMAP",
            signal,
          );
          const message = await imap.getMessage(found.id, { signal });
          return `found the Graph message (${found.id}): "${(message.text ?? "").trim()}"`;
        },
        true,
      );
      await run(
        "read",
        "POP3",
        async () => {
          const pop3 = live.mailbox.transport("pop3");
          const found = await eventually(
            () => findBySubject(pop3, subjects.smtp, signal),
            "the SMTP message over POP3",
            signal,
          );
          const message = await pop3.getMessage(found.id, { signal });
          return `found the SMTP message (UIDL ${found.id}), ${message.raw?.byteLength ?? "?"} bytes`;
        },
        true,
      );
      await run("watch", "IMAP", () => watchSeesNewMail(live, "imap", tag, signal), true);
      await run("watch", "Graph", () => watchSeesNewMail(live, "graph", tag, signal));
      say("");

      // 3. the bridge: clients that only know a password, through m365-mail bridge.
      say(p.bold("3. bridge (password in, OAuth2 out)"));
      const demoBridge = await startDemoBridge(emulator, imapRunning, join(dataDir, "bridge"));
      const { bridge } = demoBridge;
      try {
        const port = (protocol: string) => bridge.addresses.find((a) => a.protocol === protocol)!.port;
        const bridged = `m365-mail demo ${tag}: sent through the bridge`;
        await run("bridge: send", "SMTP", async () => {
          const reply = await sendWithPassword(port("smtp"), USER, DEMO_PASSWORD, USER, bridged);
          return `AUTH PLAIN with the password → Graph sendMail: ${reply.replace(/^250 /, "")}`;
        });
        await run(
          "bridge: read",
          "IMAP",
          async () => {
            const count = await eventually(
              async () => (await findWithPassword(port("imap"), USER, DEMO_PASSWORD, bridged)) || undefined,
              "the bridged message over IMAP LOGIN",
              signal,
            );
            return `LOGIN with the password → XOAUTH2 upstream: found the bridged message (${count})`;
          },
          true,
        );
        await run("bridge: MFA user", "SMTP", async () => {
          // The password grant refuses mfa@ (MFA); a person signs it in once, the device keeps a local secret.
          await demoBridge.signInMfaUser();
          const reply = await sendWithPassword(
            port("smtp"),
            MFA_LOGIN,
            demoBridge.mfaSecret,
            USER,
            `m365-mail demo ${tag}: sent by a user under MFA through the bridge`,
            MFA_USER,
          );
          return `device code approved once for ${MFA_USER}, then AUTH PLAIN with a local secret → Graph sendMail: ${reply.replace(/^250 /, "")}`;
        });
      } finally {
        await bridge.close({ drainMs: 1000 });
      }
    } catch (error) {
      progress.stop();
      throw error;
    } finally {
      await session?.close().catch(() => {});
      await emulator?.stop().catch(() => {});
      if (!keptDir) await rm(dataDir, { recursive: true, force: true }).catch(() => {});
    }

    const doctorOk = doctor?.ok ?? false;
    const ok = doctorOk && steps.every((s) => s.status !== "fail");
    if (out.json) {
      out.data({ ok, doctor, steps });
      return ok ? EXIT.OK : EXIT.FAILED;
    }
    out.out("");
    out.out(p.bold("4. summary"));
    const doctorFailed = doctor?.checks.filter((c) => c.status === "fail").length ?? 0;
    out.out(
      `  ${doctorOk ? p.ok("✓") : p.fail("✗")} doctor: ${doctorFailed === 0 ? "every check passed" : `${doctorFailed} check(s) failed`}`,
    );
    const passed = steps.filter((s) => s.status === "pass").length;
    const skipped = steps.filter((s) => s.status === "skip").length;
    const failed = steps.length - passed - skipped;
    out.out(
      `  ${failed === 0 ? p.ok("✓") : p.fail("✗")} capabilities: ${passed} passed${failed ? `, ${failed} failed` : ""}${skipped ? `, ${skipped} skipped` : ""}`,
    );
    out.out(`  the emulator and everything the demo started are stopped.`);
    return ok ? EXIT.OK : EXIT.FAILED;
  },
};
