// Boot verification on EC2: poll an instance's console output (GetConsoleOutput, the latest
// output, which current instance types keep) until it matches a pattern. A host service's script
// and its tender write there (sdk/host/script.ts), so this is the sign a unikernel is up.
import type { EC2Client } from "@aws-sdk/client-ec2";
import { TAIL_LINES } from "../core/exec";

export interface ConsoleWaitOptions {
  /** A regular expression (its source text) the console output must match. */
  pattern: string;
  timeoutMs: number;
  /**
   * When to give up, when an earlier wait (finding a group's instances) took part of the
   * timeout. Default: `timeoutMs` from now.
   */
  deadline?: number;
  /** Default: the SDK's chain. */
  region?: string;
  /** Between polls. Default: 5000 (EC2 throttles GetConsoleOutput). */
  pollMs?: number;
  signal?: AbortSignal;
}

/** The command a user runs to read the console themselves. */
export function consoleCommand(instanceId: string, region?: string): string {
  return `aws ec2 get-console-output${region ? ` --region ${region}` : ""} --instance-id ${instanceId} --latest --output text`;
}

async function client(region?: string): Promise<EC2Client> {
  const { EC2Client } = await import("@aws-sdk/client-ec2");
  return new EC2Client({ region, maxAttempts: 8 });
}

/**
 * Polls the console of `instanceId` until it matches; fails after the timeout with its last
 * lines, or at once when EC2 refuses the request (no such instance, no permission).
 */
export async function waitForConsole(
  instanceId: string,
  options: ConsoleWaitOptions,
): Promise<string> {
  const pattern = new RegExp(options.pattern, "m");
  const ec2 = await client(options.region);
  const { GetConsoleOutputCommand } = await import("@aws-sdk/client-ec2");
  const deadline = options.deadline ?? Date.now() + options.timeoutMs;
  let output = "";
  for (;;) {
    let answer: { Output?: string };
    try {
      answer = await ec2.send(
        new GetConsoleOutputCommand({ InstanceId: instanceId, Latest: true }),
        {
          abortSignal: options.signal,
        },
      );
    } catch (error) {
      throw new Error(
        `reading the console of ${instanceId} failed: ${(error as Error).name}: ${(error as Error).message}`,
        { cause: error },
      );
    }
    output = Buffer.from(answer.Output ?? "", "base64").toString("utf8");
    const match = pattern.exec(output);
    if (match) return match[0];
    if (Date.now() >= deadline) {
      const lines = output.split("\n").slice(-TAIL_LINES).join("\n") || "(no output yet)";
      throw new Error(
        `the console of ${instanceId} did not match /${options.pattern}/ within ${options.timeoutMs / 1000} s.\nLast lines of output:\n${lines}\nRead the whole console with: ${consoleCommand(instanceId, options.region)}`,
      );
    }
    await new Promise((resolve) =>
      setTimeout(resolve, Math.min(options.pollMs ?? 5000, deadline - Date.now())),
    );
    options.signal?.throwIfAborted();
  }
}
