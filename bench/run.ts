// Runs every benchmark in this folder, one after another so they do not disturb each other.
// Each prints its own table; see the file of each for what it measures and against what baseline.
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { basename, join } from "node:path";

const benches = readdirSync(__dirname)
  .filter((file) => file.endsWith(".js") && file !== basename(__filename))
  .sort();
let failed = 0;
for (const file of benches) {
  console.log(`\n## ${file.replace(/\.js$/, "")}\n`);
  const result = spawnSync(process.execPath, [join(__dirname, file)], { stdio: "inherit" });
  if (result.status !== 0) failed++;
}
process.exitCode = failed === 0 ? 0 : 1;
