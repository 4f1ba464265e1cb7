export type {
  Authenticate,
  BridgeProtocol,
  ClientInfo,
  FrontDoor,
  FrontDoorLimits,
  FrontDoorOptions,
  ListenerSecurity,
  SessionRecord,
  SignedIn,
  UpstreamEndpoint,
} from "./front-door.js";
