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
  apps: DirectoryApp[];
  users: DirectoryUser[];
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
  /** Federated (AD FS) user without HRD policy: ROPC fails with AADSTS50126. */
  federated?: boolean;
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
