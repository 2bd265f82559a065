// The bridge between a dynamic resource and its engine-side code in provider/resources/.
//
// Pulumi serializes a dynamic resource's provider object, with everything it captures, and runs it
// in a separate process (docs/platforms.md, Pulumi dynamic providers). Serializing our engine code
// by value breaks in subtle ways (ESM imports, module state), so the object we hand to Pulumi
// captures only a module name: each call loads `pulumi-mirage/provider/resources/NAME` by package
// name inside the dynamic-provider process, which resolves it from the Pulumi program's
// node_modules.
import type * as pulumi from "@pulumi/pulumi";

/**
 * The engine module of each dynamic resource type, by the name a state loads it under. Each
 * entry is that module's own type, so a name with no module in provider/resources/ does not
 * compile; the name alone reaches the dynamic-provider process.
 */
interface Engines {
  unikernel: typeof import("../provider/resources/unikernel");
  "disk-image": typeof import("../provider/resources/disk-image");
  "xen-domain": typeof import("../provider/resources/xen-domain");
  "local-vm": typeof import("../provider/resources/local-vm");
  "local-process": typeof import("../provider/resources/local-process");
  "local-tap": typeof import("../provider/resources/local-tap");
  "gce-serial-wait": typeof import("../provider/resources/gce-serial-wait");
  "ebs-snapshot": typeof import("../provider/resources/ebs-snapshot");
  "ec2-console-wait": typeof import("../provider/resources/ec2-console-wait");
  "ec2-refresh-wait": typeof import("../provider/resources/ec2-refresh-wait");
}

/** The engine modules, one per dynamic resource type, each exporting `provider`. */
export type EngineModule = keyof Engines;

export function engineProvider(name: EngineModule): pulumi.dynamic.ResourceProvider {
  const load = (): Required<pulumi.dynamic.ResourceProvider> =>
    require(`pulumi-mirage/provider/resources/${name}`).provider;
  return {
    check: (olds, news) => load().check(olds, news),
    diff: (id, olds, news) => load().diff(id, olds, news),
    create: (inputs) => load().create(inputs),
    read: (id, props) => load().read(id, props),
    update: (id, olds, news) => load().update(id, olds, news),
    delete: (id, props) => load().delete(id, props),
  };
}
