/** One `capvault` subcommand. `run` returns the process exit code. */
export interface CliCommand {
  name: string;
  summary: string;
  /** Full --help text. */
  help: string;
  run(argv: string[]): Promise<number>;
}

/** Exit codes shared by every command. */
export const EXIT = { ok: 0, failure: 1, usage: 2 } as const;

/** True when argv asks for help. */
export const wantsHelp = (argv: string[]) => argv.includes("--help") || argv.includes("-h");
