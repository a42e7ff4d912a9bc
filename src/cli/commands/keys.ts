import { ConfigError, loadConfig, parseFlags } from "../../config/load-config.js";
import { openMongoStore } from "../../store/mongodb/mongodb-store.js";
import { keyringConfigOf } from "../../vault/keyring-config.js";
import { KEYS_HELP, keysCommand as runKeys } from "./keys-subcommands.js";
import { EXIT, type CliCommand } from "../cli-command.js";

export const keysCommand: CliCommand = {
  name: "keys",
  summary: "Rotate, rewrap, retire key-encryption keys and see what each protects",
  help: KEYS_HELP,
  async run(argv) {
    const { flags, config: file, rest, problems } = parseFlags(argv);
    let config;
    try {
      if (problems.length) throw new ConfigError(problems);
      // `rotate` only edits the keyring file, so it works without MongoDB.
      config = loadConfig({ flags, file, overrides: rest[0] === "rotate" || rest.includes("--help") || !rest.length ? { dev: true } : {} });
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      process.stderr.write(`capvault keys: ${err.message}\n`);
      return EXIT.usage;
    }
    const mongo = config.mongodb;
    return runKeys(rest, {
      keyring: keyringConfigOf(config),
      openStore: async () => {
        if (!mongo.uri) throw new ConfigError(["mongodb.uri: required (set CAPVAULT_MONGODB_URI)"]);
        return openMongoStore(mongo.uri, mongo.database);
      },
    });
  },
};
