export * from "./api-keys.js";
export * from "./app.js";
export * from "./config.js";
export * from "./events/mail-events.js";
export * from "./events/webhooks.js";
export * from "./mailbox-setup.js";
export * from "./send-request.js";
export * from "./start-server.js";
