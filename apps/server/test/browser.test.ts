import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, chromium } from "playwright-core";
import { afterAll, beforeAll, expect, it } from "vitest";
import {
  CHROMIUM,
  hasChromium,
  startTestEmulator,
  startTestServer,
  type TestEmulator,
  USER,
} from "./helpers.js";

let emu: TestEmulator;
let srv: Awaited<ReturnType<typeof startTestServer>>;
let context: BrowserContext;
let profile: string;

beforeAll(async () => {
  if (!hasChromium()) return;
  emu = await startTestEmulator();
  srv = await startTestServer(emu.emulator, { WATCH_VIA: "graph", WATCH_INTERVAL_MS: "500" });
  profile = await mkdtemp(join(tmpdir(), "m365-server-chromium-"));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    acceptDownloads: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
});
afterAll(async () => {
  await context?.close();
  await srv?.stop();
  await emu?.stop();
  if (profile) await rm(profile, { recursive: true, force: true });
});

it.skipIf(!hasChromium())("a refused key shows the key form, with no detail", async () => {
  const page = await context.newPage();
  await page.goto(`${srv.url}/#key=m365_not-a-key`);
  await page.locator("#login-error").filter({ hasText: "refused" }).waitFor({ timeout: 10_000 });
  expect(await page.locator("#app").isHidden()).toBe(true);
  // The key in the link never stays in the address bar.
  expect(page.url()).not.toContain("m365_not-a-key");
  await page.close();
});

it.skipIf(!hasChromium())(
  "composes a message with an attachment in the page and sees it arrive in the inbox view",
  async () => {
    const page = await context.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(`${srv.url}/#key=${srv.key}`);
    await page.locator("#view-inbox").waitFor({ state: "visible", timeout: 10_000 });
    await page.locator("#mailbox", { hasText: USER }).waitFor({ timeout: 10_000 });

    const subject = `From the page ${Date.now()}`;
    await page.click('nav [data-view="compose"]');
    await page.fill("#compose-to", USER);
    await page.fill("#compose-subject", subject);
    await page.fill("#compose-text", "Written in Chromium, with a file.");
    await page.setInputFiles("#compose-files", {
      name: "report.csv",
      mimeType: "text/csv",
      buffer: Buffer.from("id,status\n42,open\n"),
    });
    await page.click("#compose-send");
    await page
      .locator("#compose-status")
      .filter({ hasText: /Accepted|Sent/ })
      .waitFor({ timeout: 10_000 });

    // No reload and no Refresh click: the list updates from the server's events.
    await page.click('nav [data-view="inbox"]');
    const row = page.locator("#messages tbody tr", { hasText: subject });
    await row.waitFor({ timeout: 30_000 });
    expect(await row.textContent()).toContain("📎");

    await row.click();
    await page.locator("#reader-subject", { hasText: subject }).waitFor({ timeout: 10_000 });
    expect(await page.textContent("#reader-text")).toContain("Written in Chromium, with a file.");
    const download = page.waitForEvent("download");
    await page.click("#reader-attachments button.attachment");
    const file = await download;
    expect(file.suggestedFilename()).toBe("report.csv");
    expect(await readFile((await file.path())!, "utf8")).toBe("id,status\n42,open\n");

    await page.click('nav [data-view="outbox"]');
    const entry = page.locator("#outbox tbody tr", { hasText: subject });
    await entry.waitFor({ timeout: 10_000 });
    expect(await entry.locator("td.state-sent").count()).toBe(1);
    if (process.env.SERVER_SCREENSHOT)
      await page.screenshot({ path: process.env.SERVER_SCREENSHOT, fullPage: true });
    expect(errors).toEqual([]);
    await page.close();
  },
);

it.skipIf(!hasChromium)(
  "an uncertain send shows as such in the outbox view, and Discard settles it (issue 12, item 2)",
  async () => {
    const subject = `Maybe sent ${Date.now()}`;
    // Graph delivers, its answer is lost, and the Sent Items copy never comes.
    emu.emulator.admin.armFault({ target: "graph", path: "/sendMail", kind: "status504", after: true });
    emu.emulator.admin.armFault({ target: "sentitems", kind: "lateSentItems" });
    const res = await fetch(`${srv.url}/v1/messages`, {
      method: "POST",
      headers: { authorization: `Bearer ${srv.key}`, "content-type": "application/json" },
      body: JSON.stringify({ to: USER, subject, text: "x", via: "graph" }),
    });
    expect(res.status).toBe(202);

    const page = await context.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    page.on("dialog", (dialog) => dialog.accept());
    await page.goto(`${srv.url}/#key=${srv.key}`);
    await page.locator("#view-inbox").waitFor({ state: "visible", timeout: 10_000 });
    await page.click('nav [data-view="outbox"]');
    const entry = page.locator("#outbox tbody tr", { hasText: subject });
    // The outbox view follows the server's events: no reload needed.
    await entry.locator("td.state-uncertain").waitFor({ timeout: 30_000 });
    expect(await entry.textContent()).toContain("NOT_FOUND");
    expect(await entry.locator("button").allTextContents()).toEqual(["Send again", "Discard"]);

    await entry.locator('button[data-action="discard"]').click();
    await entry.locator("td.state-failed").waitFor({ timeout: 10_000 });
    expect(await entry.textContent()).toContain("DISCARDED");
    expect(await entry.locator("button").count()).toBe(0);
    expect(errors).toEqual([]);
    await page.close();
  },
);
