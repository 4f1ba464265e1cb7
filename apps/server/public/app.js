// The m365-mail page: plain browser JavaScript, no build step. Talks only to this server's /v1 API.

const KEY_STORAGE = "m365-mail-api-key";
const $ = (selector) => document.querySelector(selector);
let apiKey = sessionStorage.getItem(KEY_STORAGE);
let currentFolder = "inbox";
let eventsController;
// Folder id (or "inbox") -> its special use, to know when the list shows Sent Items.
let specialUseOf = new Map();

// A key handed over in the link (#key=...) is moved into sessionStorage and removed from the address bar.
function takeKeyFromLink() {
  if (!location.hash.startsWith("#key=")) return false;
  apiKey = decodeURIComponent(location.hash.slice(5));
  sessionStorage.setItem(KEY_STORAGE, apiKey);
  history.replaceState(null, "", location.pathname + location.search);
  return true;
}
takeKeyFromLink();

async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    headers: {
      authorization: `Bearer ${apiKey}`,
      ...(options.body ? { "content-type": "application/json" } : {}),
      ...options.headers,
    },
  });
  if (response.status === 401) {
    showLogin("The API key was refused.");
    throw new Error("unauthorized");
  }
  if (!response.ok) {
    let message = `${response.status}`;
    try {
      const body = await response.json();
      // The server's message usually ends with the hint already: add it only when it is not there.
      const { message: said, hint } = body.error ?? {};
      if (said) message = hint && !said.includes(hint) ? `${said} — ${hint}` : said;
    } catch {}
    throw new Error(message);
  }
  return response;
}

const text = (value) => document.createTextNode(value ?? "");
function cell(row, value, className) {
  const td = row.insertCell();
  td.append(text(value));
  if (className) td.className = className;
  return td;
}
// Graph often gives the address as the name too: "a@b <a@b>" says nothing more than "a@b".
const addressOf = (a) => (a ? (a.name && a.name !== a.address ? `${a.name} <${a.address}>` : a.address) : "");
const when = (iso) => (iso ? new Date(iso).toLocaleString() : "");

function showLogin(error) {
  eventsController?.abort();
  $("#app").hidden = true;
  $("#logout").hidden = true;
  $("#login").hidden = false;
  $("#login-error").textContent = error ?? "";
}

async function loadFolders() {
  const folders = await (await api("/v1/folders")).json();
  const select = $("#folder");
  select.replaceChildren();
  specialUseOf = new Map();
  for (const f of folders) {
    const option = document.createElement("option");
    option.value = f.specialUse === "inbox" ? "inbox" : f.id;
    specialUseOf.set(option.value, f.specialUse);
    option.dataset.specialUse = f.specialUse ?? "";
    option.dataset.unread = String(f.unreadCount ?? 0);
    option.textContent = f.path + (f.unreadCount ? ` (${f.unreadCount})` : "");
    option.selected = option.value === currentFolder;
    select.append(option);
  }
}

async function loadMessages() {
  const list = await (await api(`/v1/messages?folder=${encodeURIComponent(currentFolder)}&limit=50`)).json();
  // In Sent Items the sender is always this mailbox: who it went to is what tells messages apart.
  const sent = ["sent", "sentitems"].includes(specialUseOf.get(currentFolder) ?? currentFolder);
  $("#messages-who").textContent = sent ? "To" : "From";
  const body = $("#messages tbody");
  body.replaceChildren();
  for (const m of list) {
    const row = body.insertRow();
    row.dataset.id = m.id;
    if (m.isRead === false) row.className = "unread";
    cell(row, sent ? [...(m.to || []), ...(m.cc || [])].map(addressOf).join(", ") : addressOf(m.from), "who");
    cell(row, m.subject || "(no subject)", "subject");
    cell(row, when(m.receivedAt), "received");
    cell(row, m.hasAttachments ? "📎" : "", "clip");
    row.addEventListener("click", () => openMessage(m.id, row));
  }
}

async function openMessage(id, row) {
  const m = await (
    await api(`/v1/messages/${encodeURIComponent(id)}?folder=${encodeURIComponent(currentFolder)}`)
  ).json();
  $("#reader").hidden = false;
  $("#reader-subject").textContent = m.subject || "(no subject)";
  $("#reader-from").textContent = addressOf(m.from);
  $("#reader-to").textContent = (m.to || []).map(addressOf).join(", ");
  $("#reader-cc").textContent = (m.cc || []).map(addressOf).join(", ");
  $("#reader-cc-line").hidden = !m.cc?.length;
  $("#reader-date").textContent = when(m.receivedAt);
  $("#reader").scrollIntoView({ block: "start" });
  // Opening is reading, as in Outlook: mark it read on the server, then un-bold it and update the count.
  if (m.isRead === false || row?.classList.contains("unread")) {
    api(`/v1/messages/${encodeURIComponent(id)}`, { method: "PATCH", body: JSON.stringify({ isRead: true }) })
      .then(() => {
        row?.classList.remove("unread");
        return loadFolders();
      })
      .catch(() => {});
  }
  const list = $("#reader-attachments");
  list.replaceChildren();
  for (const a of m.attachments) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.textContent = `${a.filename} (${a.size} bytes)`;
    button.className = "attachment";
    button.addEventListener("click", async () => {
      const blob = await (
        await api(
          `/v1/messages/${encodeURIComponent(id)}/attachments/${a.index}?folder=${encodeURIComponent(currentFolder)}`,
        )
      ).blob();
      const link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = a.filename;
      link.click();
      setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
    });
    item.append(button);
    list.append(item);
  }
  const frame = $("#reader-html");
  if (m.html && !m.text) {
    // sandbox="" : no scripts, no forms, no same-origin access for the sender's HTML.
    frame.srcdoc = m.html;
    frame.hidden = false;
    $("#reader-text").textContent = "";
  } else {
    frame.hidden = true;
    frame.removeAttribute("srcdoc");
    $("#reader-text").textContent = m.text ?? "";
  }
}

async function loadOutbox() {
  const entries = await (await api("/v1/outbox?limit=50")).json();
  const body = $("#outbox tbody");
  body.replaceChildren();
  for (const e of entries) {
    const row = body.insertRow();
    row.dataset.id = e.id;
    cell(row, e.subject || "(no subject)");
    cell(row, e.state, `state-${e.state}`);
    cell(row, e.transport ?? e.via);
    cell(row, String(e.attempts));
    cell(row, when(e.updatedAt));
    cell(row, e.error ? `${e.error.code}: ${e.error.message}` : "", "error");
    const actions = row.insertCell();
    // It may have been delivered: only a person who looked can say "send again" or "drop it".
    if (e.state === "uncertain") {
      for (const action of ["retry", "discard"]) {
        const button = document.createElement("button");
        button.type = "button";
        button.textContent = action === "retry" ? "Send again" : "Discard";
        button.dataset.action = action;
        button.addEventListener("click", () => resolveUncertain(e, action).catch(() => {}));
        actions.append(button);
      }
    }
  }
}

async function resolveUncertain(entry, action) {
  const question =
    action === "retry"
      ? `Send "${entry.subject ?? entry.messageId}" again? Check first that it is not in Sent Items or the recipients' mailboxes.`
      : `Discard "${entry.subject ?? entry.messageId}"? It will not be sent again.`;
  if (!confirm(question)) return;
  await api(`/v1/outbox/${encodeURIComponent(entry.id)}/resolve`, {
    method: "POST",
    body: JSON.stringify({ action }),
  });
  await loadOutbox();
}

function readFile(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1] ?? "");
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

const splitAddresses = (value) =>
  value
    .split(/[,;]/)
    .map((s) => s.trim())
    .filter(Boolean);

async function send(event) {
  event.preventDefault();
  const status = $("#compose-status");
  status.className = "";
  status.textContent = "Sending…";
  $("#compose-send").disabled = true;
  try {
    const attachments = [];
    for (const file of $("#compose-files").files) {
      attachments.push({
        filename: file.name,
        contentType: file.type || "application/octet-stream",
        content: await readFile(file),
      });
    }
    const cc = splitAddresses($("#compose-cc").value);
    const body = {
      to: splitAddresses($("#compose-to").value),
      ...(cc.length ? { cc } : {}),
      subject: $("#compose-subject").value,
      text: $("#compose-text").value,
      via: $("#compose-via").value,
      ...(attachments.length ? { attachments } : {}),
    };
    // One key per compose: pressing Send again after a network error cannot send twice.
    const form = $("#compose-form");
    form.dataset.idempotencyKey ||= crypto.randomUUID();
    const entry = await (
      await api("/v1/messages", {
        method: "POST",
        body: JSON.stringify(body),
        headers: { "idempotency-key": form.dataset.idempotencyKey },
      })
    ).json();
    status.textContent = `Accepted (${entry.state}), id ${entry.id}`;
    status.dataset.outboxId = entry.id;
    form.reset();
    delete form.dataset.idempotencyKey;
  } catch (error) {
    status.className = "error";
    status.textContent = `Not sent: ${error.message}`;
  } finally {
    $("#compose-send").disabled = false;
  }
}

// Server-Sent Events over fetch (EventSource cannot send the Authorization header).
async function listen() {
  eventsController?.abort();
  const controller = new AbortController();
  eventsController = controller;
  while (!controller.signal.aborted) {
    try {
      const response = await api("/v1/events", { signal: controller.signal });
      $("#live").classList.add("on");
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const type = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (type && data) onEvent(type, JSON.parse(data));
        }
      }
    } catch (error) {
      if (controller.signal.aborted || error.message === "unauthorized") return;
    }
    $("#live").classList.remove("on");
    await new Promise((resolve) => setTimeout(resolve, 3000));
  }
}

let refreshTimer;
function onEvent(type, data) {
  if (type === "outbox" && !$("#view-outbox").hidden) loadOutbox().catch(() => {});
  if (type === "outbox" && data.id === $("#compose-status").dataset.outboxId) {
    $("#compose-status").textContent =
      `${data.state === "sent" ? "Sent" : data.state} (${data.transport ?? data.via}), id ${data.id}`;
  }
  // New mail, or one of ours delivered: refresh the list and the folder counts once for a burst of events.
  if (type === "mail" || (type === "outbox" && data.state === "sent")) {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(() => {
      loadFolders().catch(() => {});
      if (!$("#view-inbox").hidden) loadMessages().catch(() => {});
    }, 300);
  }
}

function show(view) {
  for (const section of document.querySelectorAll(".view")) section.hidden = section.id !== `view-${view}`;
  for (const button of document.querySelectorAll("nav [data-view]"))
    button.classList.toggle("active", button.dataset.view === view);
  if (view === "inbox") loadMessages().catch(() => {});
  if (view === "outbox") loadOutbox().catch(() => {});
}

async function start() {
  if (!apiKey) return showLogin();
  try {
    await loadFolders();
  } catch (error) {
    if (error.message !== "unauthorized") showLogin(error.message);
    return;
  }
  api("/v1/me")
    .then((r) => r.json())
    .then((me) => ($("#mailbox").textContent = me.username))
    .catch(() => {});
  $("#login").hidden = true;
  $("#app").hidden = false;
  $("#logout").hidden = false;
  show("inbox");
  listen();
}

$("#login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  apiKey = $("#api-key").value.trim();
  sessionStorage.setItem(KEY_STORAGE, apiKey);
  $("#api-key").value = "";
  start();
});
$("#logout").addEventListener("click", () => {
  sessionStorage.removeItem(KEY_STORAGE);
  apiKey = null;
  showLogin();
});
for (const button of document.querySelectorAll("nav [data-view]"))
  button.addEventListener("click", () => show(button.dataset.view));
$("#folder").addEventListener("change", (event) => {
  currentFolder = event.target.value;
  $("#reader").hidden = true;
  loadMessages().catch(() => {});
});
$("#refresh").addEventListener("click", () => {
  loadMessages().catch(() => {});
  if (!$("#view-outbox").hidden) loadOutbox().catch(() => {});
});
$("#compose-form").addEventListener("submit", send);
// A new link with #key=... pasted into a tab that is already open: use that key now.
window.addEventListener("hashchange", () => {
  if (takeKeyFromLink()) start();
});
start();
