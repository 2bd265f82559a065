// The bridge between a dynamic resource and its engine-side code in provider/resources/.
//
// Pulumi serializes a dynamic resource's provider object, with everything it captures, and runs it
// in a separate process (docs/platforms.md, Pulumi dynamic providers). Serializing our engine code
// by value breaks in subtle ways (ESM imports, module state), so the object we hand to Pulumi
// captures only a module name: each call loads `pulumi-mirage/provider/resources/NAME` by package
// name inside the dynamic-provider process, which resolves it from the Pulumi program's
// node_modules.
import type * as pulumi from "@pulumi/pulumi";

/** The engine modules, one per dynamic resource type, each exporting `provider`. */
export type EngineModule =
  | "unikernel"
  | "disk-image"
  | "xen-domain"
  | "local-vm"
  | "local-process"
  | "local-tap"
  | "gce-serial-wait";

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
