// Benchmark: the real Xen host of the tests (test/support/xen-host.ts), in QEMU TCG on this
// machine. Prints, not asserts: the time from starting QEMU to dom0's sshd answering, and from
// `xl create` of the xenpv test kernel (a PVH domain) to its banner on the PV console, then to
// the domain being gone. Xen's time under TCG is most of the suite's time with a Xen host: this
// is the number to watch. Run alone with `node build/bench/xen-host.js [DOMAINS]`.
import { consoleLogPath } from "../provider/resources/xen-domain";
import { testKernel } from "../test/support/kernels";
import { startXenHost, xenHostSkipReason } from "../test/support/xen-host";

const DOMAINS = Number(process.argv[2] ?? 3);
const BANNER = "Solo5-like xen test unikernel";

async function main() {
  const skip = xenHostSkipReason();
  if (skip) {
    console.log(`skipped: ${skip}`);
    return;
  }
  const kernel = await testKernel("xenpv");
  const host = await startXenHost();
  try {
    const rows = [
      ["dom0 ready (QEMU start → sshd answers)", `${(host.bootMs / 1000).toFixed(1)} s`],
    ];
    await host.upload(kernel, "/root/bench/kernel.xen");
    for (let i = 1; i <= DOMAINS; i++) {
      const name = `bench${i}`;
      const config = `name = '${name}'\ntype = 'pvh'\nkernel = '/root/bench/kernel.xen'\nmemory = 32\n`;
      await host.sh(`cat > /root/bench/${name}.cfg`, config);
      // Timed inside dom0 (uptime, 10 ms steps), so the SSH round trips are not counted.
      const { stdout } = await host.sh(
        [
          "now() { cut -d' ' -f1 /proc/uptime; }",
          "start=$(now)",
          `xl create -q /root/bench/${name}.cfg`,
          `until grep -q '${BANNER}' ${consoleLogPath(name)} 2>/dev/null; do usleep 10000; done`,
          "banner=$(now)",
          `while xl list ${name} >/dev/null 2>&1; do usleep 10000; done`,
          "gone=$(now)",
          "echo \"$start $banner $gone\" | awk '{ print $2 - $1, $3 - $1 }'",
          `rm -f ${consoleLogPath(name)}`,
        ].join("; "),
      );
      const [banner, gone] = stdout.trim().split(" ").map(Number);
      rows.push([`${name}: xl create → banner`, `${banner.toFixed(2)} s`]);
      rows.push([`${name}: xl create → domain gone`, `${gone.toFixed(2)} s`]);
    }
    console.log("| step | time |\n|---|---|");
    for (const [step, time] of rows) console.log(`| ${step} | ${time} |`);
  } finally {
    await host.stop();
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
