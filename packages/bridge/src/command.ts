// `@m365-mail/bridge/command`: the `m365-mail bridge` command line alone, for the CLI. It loads the bridge
// (transports, outbox, msal-node) only for the subcommands that run it, so `status` and `spool` start fast.
export {
  BRIDGE_HELP,
  type BridgeCommandIo,
  formatSpool,
  formatStatus,
  runBridgeCommand,
} from "./bridge-command.js";
