import { M365MailError } from "@m365-mail/core";
import type { FaultRegistry, FaultSpec } from "./context.js";

const KINDS: readonly FaultSpec["kind"][] = [
  "delay",
  "status400",
  "status429",
  "status500",
  "status503",
  "status504",
  "malformedJson",
  "reset",
  "emptyToken",
  "lateSentItems",
  "throttled",
];

/** Checks a fault from the admin API; every mistake names the field. */
export function validateFaultSpec(value: unknown): FaultSpec {
  const spec = value as Partial<FaultSpec> | null;
  const problem =
    !spec || typeof spec !== "object"
      ? "a fault must be a JSON object"
      : typeof spec.target !== "string" || spec.target === ""
        ? 'target must be a part name ("entra", "graph", "upload", "smtp", "imap") or "*"'
        : !KINDS.includes(spec.kind as FaultSpec["kind"])
          ? `kind must be one of ${KINDS.join(", ")}`
          : spec.path !== undefined && typeof spec.path !== "string"
            ? "path must be a string"
            : spec.times !== undefined && (!Number.isInteger(spec.times) || spec.times < 1)
              ? "times must be a positive integer"
              : spec.delayMs !== undefined && (typeof spec.delayMs !== "number" || spec.delayMs < 0)
                ? "delayMs must be a non-negative number"
                : spec.retryAfterSeconds !== undefined &&
                    (typeof spec.retryAfterSeconds !== "number" || spec.retryAfterSeconds < 0)
                  ? "retryAfterSeconds must be a non-negative number"
                  : spec.after !== undefined && typeof spec.after !== "boolean"
                    ? "after must be true or false"
                    : (spec.kind === "lateSentItems") !== (spec.target === "sentitems")
                      ? 'kind "lateSentItems" goes with target "sentitems", and only it'
                      : (spec.kind === "throttled") !== (spec.target === "imap")
                        ? 'kind "throttled" goes with target "imap", and only it'
                        : spec.kind === "status400" && spec.target !== "graph"
                          ? 'kind "status400" goes with target "graph"'
                          : undefined;
  if (problem) {
    throw new M365MailError("CONFIG_INVALID", `invalid fault: ${problem}`, {
      source: "emulator",
      hint: 'Send e.g. { "target": "entra", "kind": "status429", "retryAfterSeconds": 2, "times": 1 }.',
    });
  }
  return { ...(spec as FaultSpec) };
}

export interface ArmedFault extends FaultSpec {
  /** How many more requests it fires on. */
  remaining: number;
}

/** Faults armed through the admin API, consumed by matching requests in the order they were armed. */
export function createFaultRegistry(): FaultRegistry & { list(): ArmedFault[] } {
  let armed: ArmedFault[] = [];
  return {
    arm(fault) {
      const spec = validateFaultSpec(fault);
      armed.push({ ...spec, remaining: spec.times ?? 1 });
    },
    clear() {
      armed = [];
    },
    take(target, path) {
      // "*" means every part's requests; filing in Sent Items is not a request, and IMAP takes only
      // its own kind ("throttled").
      const index = armed.findIndex(
        (f) =>
          (f.target === target || (f.target === "*" && target !== "sentitems" && target !== "imap")) &&
          (f.path === undefined || path.includes(f.path)),
      );
      if (index < 0) return undefined;
      const fault = armed[index]!;
      fault.remaining -= 1;
      if (fault.remaining <= 0) armed.splice(index, 1);
      const { remaining: _remaining, ...spec } = fault;
      return spec;
    },
    list() {
      return armed.map((f) => ({ ...f }));
    },
  };
}
