// @pulumi/gcp and @pulumi/aws are optional peer dependencies: the package loads without them (a
// user of `local` or `xen` installs neither), and a component that needs one loads it when it is
// constructed, failing with the package to install rather than Node's bare "Cannot find module".
// Only types are imported statically; TypeScript erases those imports.
import type * as Aws from "@pulumi/aws";
import type * as Gcp from "@pulumi/gcp";

type OptionalPeer = "@pulumi/gcp" | "@pulumi/aws";

/** The version range package.json declares for `peer` (this file runs from build/sdk/). */
function declaredRange(peer: OptionalPeer): string {
  const manifest: { peerDependencies: Record<string, string> } = require("../../package.json");
  return manifest.peerDependencies[peer];
}

/** The error for a missing optional peer: what needs it, what to install. */
export function missingPeerError(peer: OptionalPeer, component: string, cause?: unknown): Error {
  const range = declaredRange(peer);
  return new Error(
    `${component} needs ${peer} (${range}), an optional peer dependency of pulumi-mirage that is not installed: run \`npm install ${peer}@"${range}"\` in your Pulumi project`,
    { cause },
  );
}

function loadPeer(peer: OptionalPeer, component: string): unknown {
  try {
    return require(peer);
  } catch (error) {
    // Only the peer itself missing is ours to explain; a broken install of it keeps its own error.
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "MODULE_NOT_FOUND" && String((error as Error).message).includes(`'${peer}'`)) {
      throw missingPeerError(peer, component, error);
    }
    throw error;
  }
}

/** @pulumi/gcp, loaded for `component` (e.g. "gcp.UnikernelService"). */
export function gcpSdk(component: string): typeof Gcp {
  return loadPeer("@pulumi/gcp", component) as typeof Gcp;
}

/** @pulumi/aws, loaded for `component` (e.g. "aws.UnikernelService"). */
export function awsSdk(component: string): typeof Aws {
  return loadPeer("@pulumi/aws", component) as typeof Aws;
}
