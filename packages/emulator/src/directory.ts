/**
 * The emulated tenant: the state every answer of the emulator derives from. Load it from a JSON file
 * (`m365-mail emulator --directory dir.json`) or pass it to `startEmulator({ directory })`.
 */
export interface Directory {
  tenants: DirectoryTenant[];
  /** Access-token lifetime in seconds; Microsoft picks 3600–5400 at random. Default 3600. */
  tokenLifetimeSeconds?: number;
}

export interface DirectoryTenant {
  /** GUID. */
  id: string;
  /** Verified domains, e.g. ["contoso.com"]; a tenant can be addressed by id or domain. */
  domains: string[];
  /** Security Defaults on: SMTP AUTH is off for every mailbox (535 5.7.139), ROPC gets AADSTS530035? no: MFA. */
  securityDefaults?: boolean;
  /** Tenant-wide SMTP AUTH switch (Exchange: Set-TransportConfig -SmtpClientAuthenticationDisabled). */
  smtpAuthEnabled?: boolean;
  /**
   * Domains federated to the emulator's AD FS: Entra ID's user-realm discovery answers `Federated` for
   * them, their users sign in through WS-Trust, and a plain password grant for them is refused
   * (AADSTS50126) unless the app allows cloud password validation. Each domain must be in `domains`.
   */
  federatedDomains?: DirectoryFederatedDomain[];
  apps: DirectoryApp[];
  users: DirectoryUser[];
}

export interface DirectoryFederatedDomain {
  /** e.g. "adatum.com" */
  domain: string;
  /** The SAML version AD FS issues for this domain's users (a user's `samlVersion` wins). @default "1.1" */
  samlVersion?: "1.1" | "2.0";
}

export interface DirectoryApp {
  /** Application (client) id, GUID. */
  clientId: string;
  displayName: string;
  /** App registration → Authentication → Allow public client flows. ROPC needs it on (else AADSTS7000218). */
  publicClient: boolean;
  /** Enterprise application → Properties → Assignment required? (else any user may sign in). */
  assignmentRequired?: boolean;
  /** UPNs assigned in Enterprise application → Users and groups. */
  assignedUsers?: string[];
  /**
   * Delegated permissions with admin consent granted, as short names per resource:
   * { graph: ["User.Read", "Mail.Read"], outlook: ["SMTP.Send", "IMAP.AccessAsUser.All"] }.
   */
  grantedPermissions: { graph?: string[]; outlook?: string[] };
  /**
   * A Home Realm Discovery policy with `AllowCloudPasswordValidation: true` on the app's service
   * principal: federated users may then use the plain password grant (needs Password Hash Sync).
   */
  allowCloudPasswordValidation?: boolean;
}

export interface DirectoryUser {
  /** UPN, e.g. "support@contoso.com". */
  upn: string;
  displayName: string;
  /** Object id, GUID; generated from the UPN when absent. */
  id?: string;
  password: string;
  /** Per-user MFA or a Conditional Access policy requiring MFA → AADSTS50076. */
  mfa?: boolean;
  locked?: boolean; // AADSTS50053
  disabled?: boolean; // AADSTS50057
  passwordExpired?: boolean; // AADSTS50055
  /**
   * Federated (AD FS) user even when the domain is not in `federatedDomains`: the plain password grant
   * fails with AADSTS50126 unless the app allows cloud password validation.
   */
  federated?: boolean;
  /** The SAML version AD FS issues for this user, over the domain's. */
  samlVersion?: "1.1" | "2.0";
  /** Shared mailbox (no sign-in); other users reach it with the `.Shared` permissions. */
  shared?: boolean;
  /** UPNs allowed to open this (shared) mailbox: Full Access / Send As. */
  delegates?: string[];
  /** Exchange admin center → Manage email apps. All default to true. */
  mailboxProtocols?: { imap?: boolean; pop?: boolean; smtpAuth?: boolean };
  /** Calendar events for calendarView. */
  events?: DirectoryEvent[];
}

export interface DirectoryEvent {
  id?: string;
  subject: string;
  /** ISO 8601, UTC. */
  start: string;
  end: string;
  isAllDay?: boolean;
  location?: string;
  attendees?: string[];
  body?: string;
}
