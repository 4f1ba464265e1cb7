export type { DeviceCodeInfo } from "./device-code-flow.js";
export * from "./device-code-token-provider.js";
export { LOGIN_COMMAND } from "./errors.js";
