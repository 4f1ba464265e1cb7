export type { Command, CommandContext } from "./command.js";
export type { DoctorCheck, DoctorReport } from "./doctor-checks.js";
export { EXIT, exitCodeFor } from "./exit-codes.js";
export { COMMANDS, main, type RunOptions } from "./main.js";
