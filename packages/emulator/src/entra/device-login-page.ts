import type { IncomingMessage, ServerResponse } from "node:http";
import { registerSecret } from "@m365-mail/core";
import type { DirectoryStore } from "../directory-store.js";
import type { DeviceCodeStore } from "./device-codes.js";

export interface DeviceLoginPageDeps {
  store: DirectoryStore;
  deviceCodes: DeviceCodeStore;
}

const escapeHtml = (text: string) =>
  text.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!,
  );

function page(title: string, body: string): string {
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} — m365-mail emulator</title>
<style>body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;color:#1b1b1b}
label{display:block;margin:.8rem 0 .2rem}input{width:100%;padding:.5rem;font-size:1rem;box-sizing:border-box}
button{margin:1rem .5rem 0 0;padding:.5rem 1.2rem;font-size:1rem}.note{color:#555;font-size:.9rem}
.error{color:#a4262c}.ok{color:#107c10}</style></head>
<body><h1>${escapeHtml(title)}</h1>${body}</body></html>`;
}

function form(error?: string, code = "", username = ""): string {
  return page(
    "Enter code",
    `${error ? `<p class="error" role="alert">${escapeHtml(error)}</p>` : ""}
<p>Enter the code displayed by the application, then sign in as the mailbox user to allow or deny it.</p>
<form method="post">
<label for="code">Code</label><input id="code" name="code" autocomplete="off" value="${escapeHtml(code)}" required>
<label for="username">Username</label><input id="username" name="username" type="email" value="${escapeHtml(username)}" required>
<label for="password">Password</label><input id="password" name="password" type="password" required>
<button name="action" value="approve" type="submit">Allow</button><button name="action" value="deny" type="submit">Deny</button>
</form>
<p class="note">The emulator's stand-in for https://microsoft.com/devicelogin. The sign-in counts as one with MFA.</p>`,
  );
}

/**
 * `GET /devicelogin` shows a form for the user code, the user's name and password; `POST` approves or
 * denies the code. Approving checks the password and that the user belongs to the tenant the client
 * asked for, as Microsoft's page does.
 */
export async function handleDeviceLoginPage(
  req: IncomingMessage,
  res: ServerResponse,
  deps: DeviceLoginPageDeps,
  readBody: () => Promise<string>,
): Promise<void> {
  const send = (status: number, html: string) => {
    res.writeHead(status, {
      "content-type": "text/html; charset=utf-8",
      "cache-control": "no-store",
      "x-frame-options": "DENY",
      "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
    });
    res.end(html);
  };
  if (req.method === "GET") return send(200, form());
  if (req.method !== "POST") return send(405, page("Not allowed", "<p>Use GET or POST.</p>"));
  const fields = new URLSearchParams(await readBody());
  const code = (fields.get("code") ?? "").trim();
  const username = (fields.get("username") ?? "").trim();
  const password = fields.get("password") ?? "";
  registerSecret(password);
  const record = deps.deviceCodes.findPending(code);
  if (!record)
    return send(400, form("That code is not valid or has expired. Check it and try again.", code, username));
  if (fields.get("action") === "deny") {
    deps.deviceCodes.deny(record.userCode);
    return send(
      200,
      page("Sign-in declined", `<p class="error">You declined the sign-in on the other device.</p>`),
    );
  }
  const found = deps.store.findUser(username);
  const segment = record.tenantSegment.toLowerCase();
  const tenantOk =
    found !== undefined &&
    (segment === "organizations" ||
      segment === "common" ||
      deps.store.findTenant(segment)?.id === found.tenant.id);
  if (!found || !tenantOk || found.user.password !== password) {
    return send(401, form("Your account or password is incorrect.", code, username));
  }
  deps.deviceCodes.approve(record.userCode, found.user.upn);
  return send(
    200,
    page(
      "You're signed in",
      `<p class="ok">${escapeHtml(found.user.upn)} is signed in on the other device. You can close this window.</p>`,
    ),
  );
}
