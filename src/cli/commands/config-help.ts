import { ENV_VARS, FLAGS } from "../../config/load-config.js";

/** The configuration reference printed by `serve --help` and `dev --help`, generated from the one config table. */
export const CONFIG_HELP = `Configuration (later sources win): defaults < --config FILE (JSON) or CAPVAULT_CONFIG < environment < flags.
Flags:
${Object.entries(FLAGS)
  .map(([flag, s]) => `  ${flag.padEnd(22)} ${s.path}`)
  .join("\n")}
  --config FILE          JSON configuration file
Environment:
${Object.entries(ENV_VARS)
  .map(([name, s]) => `  ${name.padEnd(32)} ${s.path}`)
  .join("\n")}
Secrets (MongoDB passwords, keys) are accepted only from the environment or the config file, never as flags.
An invalid value stops start-up with a message naming the field and exit code 2.
`;
