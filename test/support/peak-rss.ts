// Loaded with `node --require` into a command a test measures from outside: when the process
// exits, its peak resident memory and the CPU time it used are written, as JSON, to the file
// PEAK_RSS_FILE names. A process that never exits (killed, out of memory) writes nothing.
import { writeFileSync } from "node:fs";

/** What the file holds. */
export interface PeakUsage {
  maxRssKiB: number;
  cpuMs: number;
}

const file = process.env.PEAK_RSS_FILE;
if (file) {
  process.on("exit", () => {
    const usage = process.resourceUsage();
    const peak: PeakUsage = {
      maxRssKiB: usage.maxRSS,
      cpuMs: (usage.userCPUTime + usage.systemCPUTime) / 1000,
    };
    writeFileSync(file, JSON.stringify(peak));
  });
}
