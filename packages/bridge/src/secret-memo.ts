import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

/**
 * Keeps only an HMAC of a secret under a random per-process key: enough to say "this exact password was
 * seen before" (to skip scrypt or ROPC on a repeat login, or to refuse a known-bad password without
 * asking Entra), useless to anyone who reads the process's memory dump for passwords, and gone on restart.
 */
export class SecretMemo {
  private readonly key = randomBytes(32);

  digest(scope: string, secret: string): Buffer {
    return createHmac("sha256", this.key).update(scope).update("\0").update(secret).digest();
  }

  static same(a: Buffer | undefined, b: Buffer): boolean {
    return a !== undefined && a.length === b.length && timingSafeEqual(a, b);
  }
}
