import { isIP } from "node:net";

/** An IPv4 or IPv6 network as a bigint prefix, so one comparison covers both families. */
export interface Cidr {
  readonly family: 4 | 6;
  readonly base: bigint;
  readonly bits: number;
}

function toBigInt(address: string): { family: 4 | 6; value: bigint } | undefined {
  // "::ffff:10.0.0.1" (an IPv4 client on a dual-stack socket) is matched as IPv4.
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  const a = mapped ? mapped[1]! : address;
  const family = isIP(a);
  if (family === 4) {
    const value = a.split(".").reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
    return { family: 4, value };
  }
  if (family === 6) {
    const [head, tail] = a.split("::") as [string, string | undefined];
    const parse = (s: string | undefined) => (s ? s.split(":").filter(Boolean) : []);
    let left = parse(head);
    let right = parse(tail);
    // An embedded IPv4 tail ("::ffff:1.2.3.4" not caught above, "64:ff9b::1.2.3.4").
    const fix = (groups: string[]) =>
      groups.flatMap((g) => {
        if (!g.includes(".")) return [g];
        const n = g.split(".").map(Number);
        return [((n[0]! << 8) | n[1]!).toString(16), ((n[2]! << 8) | n[3]!).toString(16)];
      });
    left = fix(left);
    right = fix(right);
    const groups =
      tail === undefined ? left : [...left, ...Array(8 - left.length - right.length).fill("0"), ...right];
    const value = groups.reduce((acc, g) => (acc << 16n) | BigInt(Number.parseInt(g, 16)), 0n);
    return { family: 6, value };
  }
  return undefined;
}

/**
 * Whom the lockout guard counts a client as: its IPv4 address, or its IPv6 /64 — one host usually holds
 * a whole /64, and counting each of its addresses apart would let it try passwords without end.
 */
export function clientKey(address: string): string {
  const parsed = toBigInt(address);
  if (!parsed || parsed.family === 4) return address.replace(/^::ffff:/i, "");
  const prefix = (parsed.value >> 64n).toString(16).padStart(16, "0");
  return `${prefix
    .match(/.{4}/g)!
    .map((g) => g.replace(/^0+(?=.)/, ""))
    .join(":")}::/64`;
}

/** "10.0.0.0/8", "192.168.1.7" (one host), "fd00::/8"; undefined when it is none of these. */
export function parseCidr(text: string): Cidr | undefined {
  const [addr, prefix] = text.trim().split("/");
  const parsed = toBigInt(addr ?? "");
  if (!parsed) return undefined;
  const max = parsed.family === 4 ? 32 : 128;
  const bits = prefix === undefined ? max : Number(prefix);
  if (!Number.isInteger(bits) || bits < 0 || bits > max || (prefix !== undefined && !/^\d+$/.test(prefix)))
    return undefined;
  const shift = BigInt(max - bits);
  return { family: parsed.family, base: (parsed.value >> shift) << shift, bits };
}

/** A matcher for a list of networks; an address that parses as neither family never matches. */
export function networkMatcher(list: readonly string[]): (address: string) => boolean {
  const cidrs = list.map(parseCidr).filter((c): c is Cidr => c !== undefined);
  return (address) => {
    const parsed = toBigInt(address);
    if (!parsed) return false;
    return cidrs.some((c) => {
      if (c.family !== parsed.family) return false;
      const shift = BigInt((c.family === 4 ? 32 : 128) - c.bits);
      return (parsed.value >> shift) << shift === c.base;
    });
  };
}

const LOOPBACK = networkMatcher(["127.0.0.0/8", "::1/128"]);

/** True for addresses a remote machine cannot reach: the default listener host, and loopback clients. */
export function isLoopbackHost(host: string): boolean {
  return host === "localhost" || LOOPBACK(host);
}

export function isLoopbackAddress(address: string): boolean {
  return LOOPBACK(address);
}
