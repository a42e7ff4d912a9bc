import { credentials, loadPackageDefinition, type ServiceError } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { protoPath } from "grpc-health-check";
import { parseFlags } from "../../config/load-config.js";
import { EXIT, wantsHelp, type CliCommand } from "../cli-command.js";

const FLAGS = { "--grpc-addr": 1, "--service": 1, "--timeout-ms": 1 };

export const healthCommand: CliCommand = {
  name: "health",
  summary: "Ask a running broker over grpc.health.v1; exit 0 only when SERVING",
  help: `Usage: capvault health [--grpc-addr HOST:PORT] [--service NAME] [--timeout-ms N]

Calls grpc.health.v1.Health/Check on a running broker and prints its status.
Exits 0 only when the status is SERVING; 1 otherwise (NOT_SERVING, unreachable, unknown service).
  --grpc-addr   broker address (default CAPVAULT_GRPC_ADDR or 127.0.0.1:50051)
  --service     a service name, e.g. capvault.v1.ProxyService (default: the whole server)
  --timeout-ms  deadline for the check (default 3000)
`,
  async run(argv) {
    if (wantsHelp(argv)) {
      process.stdout.write(this.help);
      return EXIT.ok;
    }
    const { flags, rest, problems } = parseFlags(argv, FLAGS);
    if (rest.length) problems.push(`unexpected argument ${JSON.stringify(rest[0])}`);
    const timeoutMs = Number(flags["--timeout-ms"] ?? 3000);
    if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) problems.push("--timeout-ms: must be a positive whole number");
    if (problems.length) {
      process.stderr.write(`capvault health: ${problems.join("; ")}\n`);
      return EXIT.usage;
    }
    const addr = flags["--grpc-addr"] ?? process.env.CAPVAULT_GRPC_ADDR ?? "127.0.0.1:50051";
    const service = flags["--service"] ?? "";
    const pkg = loadPackageDefinition(loadSync(protoPath, { keepCase: true, enums: String })) as any;
    const client = new pkg.grpc.health.v1.Health(addr, credentials.createInsecure());
    try {
      const status = await new Promise<string>((resolve, reject) =>
        client.check({ service }, { deadline: Date.now() + timeoutMs }, (err: ServiceError | null, res: { status: string }) =>
          err ? reject(err) : resolve(res.status),
        ),
      );
      process.stdout.write(`${addr}${service ? ` ${service}` : ""}: ${status}\n`);
      return status === "SERVING" ? EXIT.ok : EXIT.failure;
    } catch (err) {
      process.stdout.write(`${addr}: unreachable or failing (${(err as ServiceError).details || (err as Error).message})\n`);
      return EXIT.failure;
    } finally {
      client.close();
    }
  },
};
