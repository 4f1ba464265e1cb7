import { mkdtemp, rm, stat } from "node:fs/promises";
import { request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEMO_PASSWORD } from "@m365-mail/emulator";
import { type BrowserContext, chromium, type Locator, type Page } from "playwright-core";
import { afterAll, beforeAll, expect, it } from "vitest";
import {
  ALICE,
  CHROMIUM,
  client,
  hasChromium,
  startTestEmulator,
  startTestServer,
  type TestEmulator,
  USER,
} from "./helpers.js";

// The page at phone and desktop widths (issue 12, item 7). One emulator, one server, one browser.
const ARTIFACTS = join(import.meta.dirname, "artifacts");
let emu: TestEmulator;
let srv: Awaited<ReturnType<typeof startTestServer>>;
let context: BrowserContext;
let profile: string;

beforeAll(async () => {
  if (!hasChromium()) return;
  emu = await startTestEmulator();
  srv = await startTestServer(emu.emulator, { WATCH_VIA: "graph", WATCH_INTERVAL_MS: "500" });
  profile = await mkdtemp(join(tmpdir(), "m365-page-chromium-"));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
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

async function send(body: Record<string, unknown>): Promise<void> {
  const res = await client(srv.url, srv.key)("/v1/messages", {
    method: "POST",
    body: JSON.stringify({ text: "x", via: "graph", ...body }),
  });
  expect(res.status).toBe(202);
}

/** HTTPS to the emulator, trusting its CA. */
function emulatorRequest(url: string, method: string, headers: Record<string, string>, body: string) {
  return new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = httpsRequest(url, { method, headers, ca: emu.emulator.caPem }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (text += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on("error", reject);
    req.setTimeout(10_000, () => req.destroy(new Error("emulator request timed out")));
    req.end(body);
  });
}

/** Alice mails the server's mailbox straight through Graph: new mail that this server's outbox never saw. */
async function aliceSends(subject: string): Promise<void> {
  const e = emu.emulator;
  const token = await emulatorRequest(
    `${e.authorityHost}/${e.tenantId}/oauth2/v2.0/token`,
    "POST",
    { "content-type": "application/x-www-form-urlencoded" },
    new URLSearchParams({
      grant_type: "password",
      client_id: e.clientId,
      username: ALICE,
      password: DEMO_PASSWORD,
      scope: "https://graph.microsoft.com/.default",
    }).toString(),
  );
  expect(token.status).toBe(200);
  const accessToken = (JSON.parse(token.text) as { access_token: string }).access_token;
  const sent = await emulatorRequest(
    `${e.cloud.graphOrigin}/v1.0/me/sendMail`,
    "POST",
    { authorization: `Bearer ${accessToken}`, "content-type": "application/json" },
    JSON.stringify({
      message: {
        subject,
        body: { contentType: "Text", content: "x" },
        toRecipients: [{ emailAddress: { address: USER } }],
      },
    }),
  );
  expect(sent.status).toBe(202);
}

async function openPage(width = 1280): Promise<{ page: Page; errors: string[] }> {
  const page = await context.newPage();
  await page.setViewportSize({ width, height: width < 600 ? 844 : 800 });
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(`${srv.url}/#key=${srv.key}`);
  await page.locator("#view-inbox").waitFor({ state: "visible", timeout: 10_000 });
  await page.locator("#mailbox", { hasText: USER }).waitFor({ timeout: 10_000 });
  return { page, errors };
}

// Runs in the page; the test's own types have no DOM, hence the cast.
type Styles = { getComputedStyle(element: unknown): { fontWeight: string } };
const weight = (cell: Locator) =>
  cell.evaluate((td) => (globalThis as unknown as Styles).getComputedStyle(td).fontWeight);

const sideways = (page: Page) =>
  page.evaluate<number>("document.documentElement.scrollWidth - document.documentElement.clientWidth");

it.skipIf(!hasChromium())(
  "at 390 px nothing scrolls sideways and every control is on screen and works; screenshots at 390 and 1280",
  async () => {
    const subject = `Narrow screen ${Date.now()} with a long subject that has to wrap somewhere sensible`;
    await send({ to: USER, cc: ALICE, subject });
    const { page, errors } = await openPage(390);
    const row = page.locator("#messages tbody tr", { hasText: subject });
    await row.waitFor({ timeout: 30_000 });
    await row.click();
    await page.locator("#reader-subject", { hasText: subject }).waitFor({ timeout: 10_000 });
    expect(await sideways(page)).toBe(0);

    for (const control of await page.locator("header button:visible, nav button, nav select").all()) {
      const box = (await control.boundingBox())!;
      expect(box.x).toBeGreaterThanOrEqual(0);
      expect(box.x + box.width).toBeLessThanOrEqual(390);
    }
    await page.screenshot({ path: join(ARTIFACTS, "page-390.png"), fullPage: true });

    for (const view of ["compose", "outbox", "inbox"]) {
      // A click that lands is one Playwright can do without scrolling sideways.
      await page.click(`nav [data-view="${view}"]`);
      await page.locator(`#view-${view}`).waitFor({ state: "visible" });
      if (view === "outbox") await page.locator("#outbox tbody tr").first().waitFor({ timeout: 10_000 });
      expect(await sideways(page), `view ${view}`).toBe(0);
    }
    await page.click('nav [data-view="compose"]');
    const sendBox = (await page.locator("#compose-send").boundingBox())!;
    expect(sendBox.x + sendBox.width).toBeLessThanOrEqual(390);

    await page.setViewportSize({ width: 1280, height: 800 });
    await page.click('nav [data-view="inbox"]');
    await row.click();
    await page.locator("#reader-subject", { hasText: subject }).waitFor({ timeout: 10_000 });
    expect(await sideways(page)).toBe(0);
    await page.screenshot({ path: join(ARTIFACTS, "page-1280.png"), fullPage: true });
    for (const name of ["page-390.png", "page-1280.png"])
      expect((await stat(join(ARTIFACTS, name))).mtimeMs).toBeGreaterThan(Date.now() - 120_000);
    expect(errors).toEqual([]);
    await page.close();
  },
);

it.skipIf(!hasChromium())(
  "unread mail is bold; opening it marks it read on the server and un-bolds it; Cc is shown",
  async () => {
    const subject = `Unread ${Date.now()}`;
    await send({ to: USER, cc: ALICE, subject });
    const { page, errors } = await openPage();
    const row = page.locator("#messages tbody tr", { hasText: subject });
    await row.waitFor({ timeout: 30_000 });
    expect(await row.getAttribute("class")).toBe("unread");
    expect(await weight(row.locator("td.subject"))).toBe("700");
    const id = (await row.getAttribute("data-id"))!;

    const marked = page.waitForRequest((r) => r.method() === "PATCH" && r.url().includes("/v1/messages/"));
    await row.click();
    expect((await marked).postDataJSON()).toEqual({ isRead: true });
    await page.locator("#reader-subject", { hasText: subject }).waitFor({ timeout: 10_000 });
    expect(await page.textContent("#reader-cc")).toContain(ALICE);
    expect(await page.locator("#reader-cc-line").isVisible()).toBe(true);
    expect(await page.textContent("#reader-to")).toContain(USER);

    await expect.poll(() => row.getAttribute("class"), { timeout: 10_000 }).not.toBe("unread");
    expect(await weight(row.locator("td.subject"))).toBe("400");
    const res = await client(srv.url, srv.key)(`/v1/messages/${encodeURIComponent(id)}`);
    const fresh = (await res.json()) as { isRead?: boolean };
    expect(fresh.isRead).toBe(true);
    // Still read after a reload: the server, not just the page, knows.
    await page.reload();
    const again = page.locator("#messages tbody tr", { hasText: subject });
    await again.waitFor({ timeout: 10_000 });
    expect(await again.getAttribute("class")).not.toBe("unread");

    // A message without Cc shows no empty Cc line.
    const plain = `No cc ${Date.now()}`;
    await send({ to: USER, subject: plain });
    const plainRow = page.locator("#messages tbody tr", { hasText: plain });
    await plainRow.waitFor({ timeout: 30_000 });
    await plainRow.click();
    await page.locator("#reader-subject", { hasText: plain }).waitFor({ timeout: 10_000 });
    expect(await page.locator("#reader-cc-line").isVisible()).toBe(false);
    expect(errors).toEqual([]);
    await page.close();
  },
);

it.skipIf(!hasChromium())("the Inbox's unread count follows new mail without a reload", async () => {
  const { page, errors } = await openPage();
  const inbox = page.locator('#folder option[value="inbox"]');
  // What the user reads: "Inbox (3)", or just "Inbox" when nothing is unread.
  const shown = async () => Number(/\((\d+)\)/.exec((await inbox.textContent()) ?? "")?.[1] ?? 0);
  const before = await shown();
  // Sent by Alice, not through this server: only the new-mail event can tell the page.
  await aliceSends(`Count me ${Date.now()}`);
  await expect.poll(shown, { timeout: 30_000 }).toBe(before + 1);
  expect(await inbox.getAttribute("data-unread")).toBe(String(before + 1));
  expect(errors).toEqual([]);
  await page.close();
});

it.skipIf(!hasChromium())("Sent Items lists whom a message went to, not the sender", async () => {
  const subject = `To Alice ${Date.now()}`;
  await send({ to: ALICE, subject });
  const { page, errors } = await openPage();
  const sentValue = await page.locator('#folder option[data-special-use="sent"]').getAttribute("value");
  expect(sentValue).toBeTruthy();
  await page.selectOption("#folder", sentValue!);
  const row = page.locator("#messages tbody tr", { hasText: subject });
  await expect
    .poll(
      async () => {
        if ((await row.count()) === 0) await page.click("#refresh");
        return row.count();
      },
      { timeout: 30_000, interval: 1000 },
    )
    .toBe(1);
  expect(await page.textContent("#messages-who")).toBe("To");
  expect(await row.locator("td.who").textContent()).toContain(ALICE);
  expect(await row.locator("td.who").textContent()).not.toContain(USER);
  // Back in the Inbox the column is the sender again.
  await page.selectOption("#folder", "inbox");
  await expect.poll(() => page.textContent("#messages-who")).toBe("From");
  expect(errors).toEqual([]);
  await page.close();
});

it.skipIf(!hasChromium())("an error's hint is shown once", async () => {
  const { page } = await openPage();
  await page.click('nav [data-view="compose"]');
  await page.fill("#compose-to", USER);
  await page.fill("#compose-cc", Array.from({ length: 500 }, (_, i) => `r${i}@contoso.com`).join(", "));
  await page.fill("#compose-subject", "Too many");
  await page.click("#compose-send");
  const status = page.locator("#compose-status");
  await status.filter({ hasText: "Not sent" }).waitFor({ timeout: 10_000 });
  const said = (await status.textContent())!;
  expect(said).toContain("501 recipients");
  expect(said.split("Split the recipients").length - 1).toBe(1);
  await page.close();
});

it.skipIf(!hasChromium())("#key= in a tab that is already open signs in with that key", async () => {
  const page = await context.newPage();
  await page.goto(`${srv.url}/#key=m365_not-a-key`);
  await page.locator("#login-error").filter({ hasText: "refused" }).waitFor({ timeout: 10_000 });
  // Same tab, no reload: only the fragment changes, as when a new link is pasted.
  await page.evaluate(`location.hash = ${JSON.stringify(`#key=${srv.key}`)}`);
  await page.locator("#view-inbox").waitFor({ state: "visible", timeout: 10_000 });
  await page.locator("#mailbox", { hasText: USER }).waitFor({ timeout: 10_000 });
  expect(await page.locator("#login").isHidden()).toBe(true);
  expect(page.url()).not.toContain(srv.key);
  await page.close();
});

it.skipIf(!hasChromium())("unknown routes answer 404 in the API's error shape", async () => {
  const page = await context.newPage();
  for (const path of ["/no-such-page", "/v1/no-such-route"]) {
    const response = (await page.goto(`${srv.url}${path}`))!;
    expect(response.status()).toBe(404);
    expect(response.headers()["content-type"]).toContain("application/json");
    const body = await response.json();
    expect(body.error.code).toBe("NOT_FOUND");
    expect(body.error.message).toContain(path);
    expect(Object.keys(body)).toEqual(["error"]);
  }
  await page.close();
});
