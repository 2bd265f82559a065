// gcp.UnikernelService under Pulumi's mocks: the resources it declares, their inputs and options,
// preview with unknown values, and what it refuses. The gcp provider plugin cannot run here
// (docs/platforms.md, Pulumi dynamic providers), so this is the level at which the component's
// contract is checked; the boot wait's engine code is tested against a fake API in
// gce-serial.test.ts.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as gcp_ from "@pulumi/gcp";
import * as pulumi from "@pulumi/pulumi";
import { DiskImage } from "../sdk/disk-image";
import * as gcp from "../sdk/gcp";
import { Unikernel } from "../sdk/unikernel";
import {
  byType,
  GOOD_KERNEL,
  KERNEL_SHA,
  type Loose,
  link,
  mockStack,
  one,
  outputsDone,
  PROJECT,
  runExample,
  secretValue,
  unknown,
  value,
  ZONE,
} from "./support/gcp-mocks";
import { programErrors } from "./support/program-errors";

/** A virtio kernel, built from source. */

function kernel(): Unikernel {
  return new Unikernel("web-kernel", { source: "../web", target: "virtio" });
}

/** Builds a service and waits until everything it declares is registered. */
async function deploy(args: Omit<gcp.UnikernelServiceArgs, "unikernel">, name = "web") {
  const service = new gcp.UnikernelService(name, { unikernel: kernel(), ...args });
  const outputs = {
    imageSelfLink: await value(service.imageSelfLink, "imageSelfLink"),
    instanceNames: await value(service.instanceNames, "instanceNames"),
    externalIps: await value(service.externalIps, "externalIps"),
    serialCommands: await value(service.serialCommands, "serialCommands"),
  };
  if (service.bootCheck) await value(service.bootCheck.urn, "bootCheck");
  await outputsDone(service.urn);
  return { service, outputs };
}

describe("gcp.UnikernelService", () => {
  it("declares upload, image, firewall and one virtio-net VM, children of the component", async () => {
    const seen = await mockStack(GOOD_KERNEL);
    const component = "urn:pulumi:dev::proj::pulumi-mirage:gcp:UnikernelService::web";
    const { outputs } = await deploy({
      project: PROJECT,
      zone: ZONE,
      bucket: "my-images",
      imageFamily: "web",
      ports: [8080, { port: 53, protocol: "udp" }],
      labels: { team: "edge" },
      waitFor: { console: /listening on \d+/, timeoutSeconds: 120 },
    });

    // Registration order depends on when inputs resolve: compare the graph by name.
    assert.deepEqual(
      seen
        .map((r) => [r.type, r.name, r.parent === component ? "child" : "top"])
        .sort((a, b) => a[1].localeCompare(b[1])),
      [
        ["pulumi-nodejs:dynamic/pulumi-mirage:Unikernel", "web-kernel", "top"],
        ["pulumi-mirage:gcp:UnikernelService", "web", "top"],
        ["pulumi-nodejs:dynamic/pulumi-mirage:DiskImage", "web-disk", "child"],
        ["gcp:storage/bucketObject:BucketObject", "web-upload", "child"],
        ["gcp:compute/image:Image", "web-image", "child"],
        ["gcp:compute/firewall:Firewall", "web-fw", "child"],
        ["gcp:compute/instance:Instance", "web-vm", "child"],
        ["gcp:compute/network:Network", "web-net", "child"],
        ["pulumi-nodejs:dynamic/pulumi-mirage:GceSerialWait", "web-boot", "child"],
      ].sort((a, b) => a[1].localeCompare(b[1])),
      "nothing else: no bucket (one was given)",
    );

    const disk = one(seen, "pulumi-nodejs:dynamic/pulumi-mirage:DiskImage");
    assert.equal(disk.inputs.format, "gce");

    const upload = one(seen, "gcp:storage/bucketObject:BucketObject");
    assert.equal(upload.inputs.bucket, "my-images");
    assert.equal(upload.inputs.name, "web-0123456789ab.tar.gz");
    assert.equal(
      await (upload.inputs.source as { path: Promise<string> }).path,
      "/cache/images/0123456789ab/image.tar.gz",
    );

    const image = one(seen, "gcp:compute/image:Image");
    assert.deepEqual(image.inputs.rawDisk, {
      source: "https://storage.googleapis.com/my-images/web-0123456789ab.tar.gz",
    });
    assert.equal(image.inputs.family, "web");
    assert.equal(image.inputs.guestOsFeatures, undefined);
    assert.deepEqual(image.inputs.labels, {
      team: "edge",
      "mirage-unikernel": "web",
      "mirage-kernel-sha256": KERNEL_SHA.slice(0, 32),
      "mirage-version": "4-11-0",
    });
    assert.match(String(image.inputs.description), new RegExp(`sha256 ${KERNEL_SHA}`));

    const vm = one(seen, "gcp:compute/instance:Instance");
    assert.equal(vm.inputs.machineType, "e2-micro");
    assert.equal(vm.inputs.zone, ZONE);
    assert.equal(vm.inputs.name, undefined, "auto-named, so old and new VMs can coexist");
    assert.deepEqual(vm.inputs.bootDisk, {
      initializeParams: { image: link("global/images", "web-image-1a2b3c4") },
    });
    // No network given: one with MTU 1500, Solo5's frame size.
    const net = one(seen, "gcp:compute/network:Network");
    assert.equal(net.inputs.mtu, 1500);
    assert.equal(net.inputs.autoCreateSubnetworks, true);
    assert.deepEqual(vm.inputs.networkInterfaces, [
      {
        network: link("global/networks", "web-net-1a2b3c4"),
        nicType: "VIRTIO_NET",
        accessConfigs: [{}],
      },
    ]);
    assert.equal(vm.inputs.serviceAccount, undefined);
    assert.deepEqual(vm.inputs.labels, image.inputs.labels);
    // A new image replaces the VM, the new one created before the old one is deleted.
    assert.deepEqual(vm.replaceOnChanges, [
      "bootDisk.initializeParams.image",
      "metadataStartupScript",
    ]);
    assert.equal(vm.deleteBeforeReplace, false);

    const fw = one(seen, "gcp:compute/firewall:Firewall");
    assert.deepEqual(fw.inputs.allows, [
      { protocol: "tcp", ports: ["8080"] },
      { protocol: "udp", ports: ["53"] },
    ]);
    assert.deepEqual(fw.inputs.sourceRanges, ["0.0.0.0/0"]);
    assert.equal(fw.inputs.network, link("global/networks", "web-net-1a2b3c4"));
    assert.equal(fw.inputs.direction, "INGRESS");
    const tags = vm.inputs.tags as string[];
    assert.equal(tags.length, 1);
    assert.match(tags[0], /^web-[0-9a-f]{8}$/);
    assert.deepEqual(fw.inputs.targetTags, tags, "the firewall opens ports to these VMs only");

    const wait = one(seen, "pulumi-nodejs:dynamic/pulumi-mirage:GceSerialWait");
    assert.deepEqual(wait.inputs.instances, [link(`zones/${ZONE}/instances`, "web-vm-1a2b3c4")]);
    assert.equal(wait.inputs.pattern, "listening on \\d+");
    assert.equal(wait.inputs.timeoutSeconds, 120);
    assert.equal(typeof wait.inputs.__provider, "string", "its provider serialized");
    assert.ok(wait.dependencies.some((urn) => urn.endsWith("::web-vm")));

    assert.deepEqual(outputs, {
      imageSelfLink: link("global/images", "web-image-1a2b3c4"),
      instanceNames: ["web-vm-1a2b3c4"],
      externalIps: ["203.0.113.7"],
      serialCommands: [
        `gcloud compute instances get-serial-port-output web-vm-1a2b3c4 --zone ${ZONE} --project ${PROJECT}`,
      ],
    });
  });

  it("creates a bucket when none is given, and can go without a public IP", async () => {
    const seen = await mockStack(GOOD_KERNEL);
    const { outputs } = await deploy(
      {
        project: PROJECT,
        zone: ZONE,
        region: "europe-west1",
        publicIp: false,
        ports: [443],
        sourceRanges: ["198.51.100.0/24"],
        serviceAccount: { email: "web@demo-project.iam.gserviceaccount.com" },
        machineType: "n2-standard-2",
      },
      "api",
    );
    const bucket = one(seen, "gcp:storage/bucket:Bucket");
    assert.equal(bucket.inputs.location, "europe-west1");
    assert.equal(bucket.inputs.uniformBucketLevelAccess, true);
    const upload = one(seen, "gcp:storage/bucketObject:BucketObject");
    assert.equal(upload.inputs.bucket, "api-images-1a2b3c4");

    const net = one(seen, "gcp:compute/network:Network");
    assert.equal(net.inputs.mtu, 1500);
    assert.equal(net.inputs.autoCreateSubnetworks, true);
    const vm = one(seen, "gcp:compute/instance:Instance");
    assert.deepEqual(vm.inputs.networkInterfaces, [
      {
        network: link("global/networks", "api-net-1a2b3c4"),
        nicType: "VIRTIO_NET",
        accessConfigs: [],
      },
    ]);
    assert.equal(vm.inputs.machineType, "n2-standard-2");
    assert.deepEqual(vm.inputs.serviceAccount, {
      email: "web@demo-project.iam.gserviceaccount.com",
      scopes: ["https://www.googleapis.com/auth/cloud-platform"],
    });
    const fw = one(seen, "gcp:compute/firewall:Firewall");
    assert.equal(fw.inputs.network, link("global/networks", "api-net-1a2b3c4"));
    assert.deepEqual(fw.inputs.sourceRanges, ["198.51.100.0/24"]);
    assert.deepEqual(fw.inputs.allows, [{ protocol: "tcp", ports: ["443"] }]);
    assert.deepEqual(outputs.externalIps, []);
    assert.equal(byType(seen, "pulumi-nodejs:dynamic/pulumi-mirage:GceSerialWait").length, 0);
  });

  it("uses an existing network as it is, warning at preview when it is the MTU 1460 default", async () => {
    const warnings: string[] = [];
    const warn = console.warn;
    console.warn = (message: string) => warnings.push(message);
    try {
      // The warning comes from the constructor, so preview and update show it alike.
      const seen = await mockStack(GOOD_KERNEL);
      await deploy({ bucket: "b", network: "default" }, "dflt");
      await deploy(
        {
          bucket: "b",
          network: "projects/p/global/networks/jumbo",
          subnetwork: "projects/p/regions/europe-west1/subnetworks/jumbo-ew1",
        },
        "mine",
      );
      await deploy({ bucket: "b", network: `${link("global", "networks")}/default` }, "link");
      const nics = byType(seen, "gcp:compute/instance:Instance").map(
        (r) => (r.inputs.networkInterfaces as Loose)[0],
      );
      assert.deepEqual(
        nics.map((n) => [n.network, n.subnetwork]),
        [
          ["default", undefined],
          [
            "projects/p/global/networks/jumbo",
            "projects/p/regions/europe-west1/subnetworks/jumbo-ew1",
          ],
          [`${link("global", "networks")}/default`, undefined],
        ],
      );
      assert.equal(byType(seen, "gcp:compute/network:Network").length, 0, "no network created");
    } finally {
      console.warn = warn;
    }
    assert.equal(warnings.length, 2, warnings.join("\n"));
    assert.match(
      warnings[0],
      /network "default" has MTU 1460 while Solo5 sends 1500-byte frames: full-size packets are dropped[\s\S]*Leave network unset \(the component creates an MTU 1500 network\), or give a network created with mtu: 1500/,
    );
    assert.match(warnings[1], /networks\/default" has MTU 1460/);
  });

  it("opens no firewall when no ports are declared", async () => {
    const seen = await mockStack(GOOD_KERNEL);
    await deploy({ project: PROJECT, zone: ZONE, bucket: "b" }, "quiet");
    assert.equal(byType(seen, "gcp:compute/firewall:Firewall").length, 0);
  });

  it("grows past one VM into a regional group whose rollout waits for healthy new VMs", async () => {
    const seen = await mockStack(GOOD_KERNEL);
    const { service, outputs } = await deploy(
      {
        project: PROJECT,
        region: "europe-west1",
        bucket: "b",
        replicas: 3,
        ports: [{ port: 53, protocol: "udp" }, 8080, 8443],
        // `serial`, console's name in 0.1, is still taken.
        waitFor: { serial: "listening" },
      },
      "fleet",
    );
    assert.equal(byType(seen, "gcp:compute/instance:Instance").length, 0);
    const template = one(seen, "gcp:compute/instanceTemplate:InstanceTemplate");
    assert.deepEqual(template.inputs.disks, [
      { sourceImage: link("global/images", "fleet-image-1a2b3c4"), boot: true, autoDelete: true },
    ]);
    assert.equal(template.inputs.machineType, "e2-micro");
    assert.deepEqual(template.inputs.networkInterfaces, [
      {
        network: link("global/networks", "fleet-net-1a2b3c4"),
        nicType: "VIRTIO_NET",
        accessConfigs: [{}],
      },
    ]);
    assert.equal(template.inputs.name, undefined);
    assert.equal(template.deleteBeforeReplace, false);
    const firewalls = byType(seen, "gcp:compute/firewall:Firewall");
    const open = firewalls.find((f) => f.name === "fleet-fw");
    const probes = firewalls.find((f) => f.name === "fleet-probes");
    assert.ok(open && probes);
    assert.deepEqual(template.inputs.tags, open.inputs.targetTags);

    // The health check: TCP on the first TCP port, probed from Google's ranges only.
    const health = one(seen, "gcp:compute/healthCheck:HealthCheck");
    assert.equal(health.name, "fleet-health");
    assert.deepEqual(health.inputs.tcpHealthCheck, { port: 8080 });
    assert.equal(health.inputs.httpHealthCheck, undefined);
    assert.deepEqual(probes.inputs.allows, [{ protocol: "tcp", ports: ["8080"] }]);
    assert.deepEqual(probes.inputs.sourceRanges, ["35.191.0.0/16", "130.211.0.0/22"]);
    assert.deepEqual(probes.inputs.targetTags, template.inputs.tags);

    const group = one(seen, "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager");
    assert.equal(group.inputs.region, "europe-west1");
    assert.equal(group.inputs.targetSize, 3);
    assert.deepEqual(group.inputs.versions, [
      {
        name: "primary",
        instanceTemplate: `${link("global/instanceTemplates", "fleet-template-1a2b3c4")}?uniqueId=42`,
      },
    ]);
    assert.deepEqual(group.inputs.autoHealingPolicies, {
      healthCheck: link("global/healthChecks", "fleet-health-1a2b3c4"),
      initialDelaySec: 120,
    });
    // New VMs first, no old VM removed before a new one is healthy for minReadySec.
    assert.deepEqual(group.inputs.updatePolicy, {
      type: "PROACTIVE",
      minimalAction: "REPLACE",
      replacementMethod: "SUBSTITUTE",
      maxSurgeFixed: 3,
      maxUnavailableFixed: 0,
      minReadySec: 30,
    });
    assert.ok(group.dependencies.some((urn) => urn.endsWith("::fleet-probes")));
    // The boot wait, not the group, waits for the new VMs: it fails with the bad VM's console.
    assert.equal(group.inputs.waitForInstances, false);

    assert.equal(
      await value(service.instanceGroup, "instanceGroup"),
      link("regions/europe-west1/instanceGroups", "fleet"),
    );
    const wait = one(seen, "pulumi-nodejs:dynamic/pulumi-mirage:GceSerialWait");
    assert.equal(wait.inputs.pattern, "listening");
    assert.deepEqual(wait.inputs.group, {
      manager: link("regions/europe-west1/instanceGroupManagers", "fleet-group-1a2b3c4"),
      template: `${link("global/instanceTemplates", "fleet-template-1a2b3c4")}?uniqueId=42`,
      size: 3,
    });
    assert.equal(wait.inputs.instances, undefined);
    assert.equal(wait.inputs.timeoutSeconds, 300);
    assert.ok(wait.dependencies.some((urn) => urn.endsWith("::fleet-group")));
    // The names are the VMs the wait found booted.
    assert.deepEqual(outputs.instanceNames, ["web-n1", "web-n2", "web-n3"]);
  });

  it("staticIp: one VM holds a reserved address in its region, and is replaced delete-first", async () => {
    const seen = await mockStack(GOOD_KERNEL);
    const { service } = await deploy(
      { project: PROJECT, zone: ZONE, bucket: "b", ports: [8080], staticIp: true },
      "pin",
    );
    const address = one(seen, "gcp:compute/address:Address");
    assert.equal(address.name, "pin-ip");
    assert.deepEqual(
      {
        region: address.inputs.region,
        type: address.inputs.addressType,
        project: address.inputs.project,
      },
      { region: "europe-west1", type: "EXTERNAL", project: PROJECT },
    );
    const vm = one(seen, "gcp:compute/instance:Instance");
    assert.deepEqual((vm.inputs.networkInterfaces as Loose)[0].accessConfigs, [
      { natIp: "203.0.113.50" },
    ]);
    // The address belongs to one VM at a time: the old VM lets it go before the new one takes it.
    assert.equal(vm.deleteBeforeReplace, true);
    assert.equal(await value(service.address, "address"), "203.0.113.50");
    assert.equal(byType(seen, "gcp:compute/globalAddress:GlobalAddress").length, 0);
  });

  it("staticIp: a group gets one address on a proxy load balancer sharing its health check", async () => {
    const seen = await mockStack(GOOD_KERNEL);
    const { service } = await deploy(
      {
        project: PROJECT,
        region: "europe-west1",
        bucket: "b",
        replicas: 3,
        ports: [8080, 8443],
        publicIp: false,
        staticIp: true,
        healthCheck: { httpPath: "/healthz" },
      },
      "lb",
    );
    // Known once every port forwards.
    assert.equal(await value(service.address, "address"), "198.51.100.99");
    const health = one(seen, "gcp:compute/healthCheck:HealthCheck");
    const healthLink = link("global/healthChecks", "lb-health-1a2b3c4");
    const group = one(seen, "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager");
    assert.equal((group.inputs.autoHealingPolicies as Loose).healthCheck, healthLink);
    assert.deepEqual(health.inputs.httpHealthCheck, { port: 8080, requestPath: "/healthz" });
    assert.deepEqual(group.inputs.namedPorts, [
      { name: "tcp8080", port: 8080 },
      { name: "tcp8443", port: 8443 },
    ]);
    const address = one(seen, "gcp:compute/globalAddress:GlobalAddress");
    assert.equal(address.name, "lb-ip");
    assert.equal(address.inputs.addressType, "EXTERNAL");
    const backends = byType(seen, "gcp:compute/backendService:BackendService").sort((a, b) =>
      a.name.localeCompare(b.name),
    );
    assert.deepEqual(
      backends.map((b) => [
        b.name,
        b.inputs.portName,
        b.inputs.protocol,
        b.inputs.loadBalancingScheme,
      ]),
      [
        ["lb-lb-8080", "tcp8080", "TCP", "EXTERNAL_MANAGED"],
        ["lb-lb-8443", "tcp8443", "TCP", "EXTERNAL_MANAGED"],
      ],
    );
    for (const b of backends) {
      assert.equal(
        b.inputs.healthChecks,
        healthLink,
        "the autohealing check decides where traffic goes",
      );
      assert.deepEqual(b.inputs.backends, [
        {
          group: link("regions/europe-west1/instanceGroups", "lb"),
          balancingMode: "UTILIZATION",
          capacityScaler: 1,
        },
      ]);
    }
    const proxies = byType(seen, "gcp:compute/targetTCPProxy:TargetTCPProxy");
    assert.deepEqual(proxies.map((p) => p.inputs.backendService).sort(), [
      link("global/backendServices", "lb-lb-8080-1a2b3c4"),
      link("global/backendServices", "lb-lb-8443-1a2b3c4"),
    ]);
    const rules = byType(seen, "gcp:compute/globalForwardingRule:GlobalForwardingRule").sort(
      (a, b) => a.name.localeCompare(b.name),
    );
    assert.deepEqual(
      rules.map((r) => [
        r.name,
        r.inputs.ipAddress,
        r.inputs.portRange,
        r.inputs.target,
        r.inputs.loadBalancingScheme,
      ]),
      [
        [
          "lb-fwd-8080",
          "198.51.100.99",
          "8080",
          link("global/targetTcpProxies", "lb-proxy-8080-1a2b3c4"),
          "EXTERNAL_MANAGED",
        ],
        [
          "lb-fwd-8443",
          "198.51.100.99",
          "8443",
          link("global/targetTcpProxies", "lb-proxy-8443-1a2b3c4"),
          "EXTERNAL_MANAGED",
        ],
      ],
    );
    // The proxies connect from Google's ranges: the probe rule lets them reach every port.
    const probes = byType(seen, "gcp:compute/firewall:Firewall").find(
      (f) => f.name === "lb-probes",
    );
    assert.deepEqual(probes?.inputs.allows, [{ protocol: "tcp", ports: ["8080", "8443"] }]);
    const template = one(seen, "gcp:compute/instanceTemplate:InstanceTemplate");
    assert.deepEqual((template.inputs.networkInterfaces as Loose)[0].accessConfigs, []);
    assert.equal(byType(seen, "gcp:compute/address:Address").length, 0);
  });

  it("without waitFor the group itself waits for its update; an HTTP path can be the check", async () => {
    const seen = await mockStack(GOOD_KERNEL);
    const { outputs } = await deploy(
      {
        project: PROJECT,
        region: "europe-west1",
        bucket: "b",
        replicas: 5,
        ports: [80],
        healthCheck: { httpPath: "/healthz", initialDelaySec: 60, minReadySec: 10 },
      },
      "pool",
    );
    const health = one(seen, "gcp:compute/healthCheck:HealthCheck");
    assert.deepEqual(health.inputs.httpHealthCheck, { port: 80, requestPath: "/healthz" });
    assert.equal(health.inputs.tcpHealthCheck, undefined);
    const group = one(seen, "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager");
    assert.equal(group.inputs.waitForInstances, true);
    assert.equal(group.inputs.waitForInstancesStatus, "UPDATED");
    assert.equal((group.inputs.updatePolicy as Loose).maxSurgeFixed, 5);
    assert.equal((group.inputs.updatePolicy as Loose).maxUnavailableFixed, 0);
    assert.equal((group.inputs.updatePolicy as Loose).minReadySec, 10);
    assert.equal((group.inputs.autoHealingPolicies as Loose).initialDelaySec, 60);
    assert.equal(byType(seen, "pulumi-nodejs:dynamic/pulumi-mirage:GceSerialWait").length, 0);
    // Listed by the gcp provider once the group is stable.
    assert.deepEqual(outputs.instanceNames, ["web-x2k9", "web-a7b1", "web-q3zz"]);
    assert.deepEqual(outputs.externalIps, ["198.51.100.11", "198.51.100.12"]);
  });

  it("hands the gcp provider's own credentials to the boot wait, as secrets", async () => {
    const seen = await mockStack(GOOD_KERNEL);
    const explicit = new gcp_.Provider("explicit", { accessToken: "ya29.provider-token" });
    const service = new gcp.UnikernelService(
      "cred",
      { unikernel: kernel(), zone: ZONE, bucket: "b", waitFor: { console: "x" } },
      { providers: [explicit] },
    );
    await value(service.bootCheck?.urn as pulumi.Output<string>, "bootCheck");
    const wait = one(seen, "pulumi-nodejs:dynamic/pulumi-mirage:GceSerialWait");
    assert.deepEqual(wait.inputs.accessToken, secretValue("ya29.provider-token"));
    // The provider has no credentials: an empty secret, which the wait treats as none.
    assert.equal((wait.inputs.credentials as Loose)?.value ?? undefined, undefined);

    // Without an explicit provider: the default provider's stack config.
    const seen2 = await mockStack(GOOD_KERNEL);
    pulumi.runtime.setConfig("gcp:credentials", '{"type":"service_account"}');
    try {
      const other = new gcp.UnikernelService("cred2", {
        unikernel: kernel(),
        zone: ZONE,
        bucket: "b",
        waitFor: { console: "x" },
      });
      await value(other.bootCheck?.urn as pulumi.Output<string>, "bootCheck");
    } finally {
      pulumi.runtime.setAllConfig({});
    }
    const wait2 = one(seen2, "pulumi-nodejs:dynamic/pulumi-mirage:GceSerialWait");
    assert.deepEqual(wait2.inputs.credentials, secretValue('{"type":"service_account"}'));
    assert.equal((wait2.inputs.accessToken as Loose)?.value ?? undefined, undefined);
  });

  it("previews with unknown values: the whole graph, unknowns left unknown", async () => {
    const seen = await mockStack({ target: "virtio" }, true);
    const service = new gcp.UnikernelService("pre", {
      unikernel: kernel(),
      project: PROJECT,
      zone: ZONE,
      bucket: "b",
      ports: [8080],
      waitFor: { console: "listening" },
    });
    // Nothing is known about the VM until it exists.
    const known = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(true), 5000);
      (service.instanceNames as Loose).isKnown.then((k: boolean) => {
        clearTimeout(timer);
        resolve(k);
      });
    });
    assert.equal(known, false);
    await value(service.urn, "component");
    await value(service.bootCheck?.urn as pulumi.Output<string>, "bootCheck");
    assert.deepEqual(seen.map((r) => r.name).sort(), [
      "pre",
      "pre-boot",
      "pre-disk",
      "pre-fw",
      "pre-image",
      "pre-net",
      "pre-upload",
      "pre-vm",
      "web-kernel",
    ]);
    // The upload is named by the DiskImage's check, which also refuses a kernel GCE cannot boot
    // (test/rules.test.ts): its name is known at preview. The VM waits for the image.
    const image = one(seen, "gcp:compute/image:Image");
    assert.equal(
      (image.inputs.rawDisk as Loose).source,
      "https://storage.googleapis.com/b/web-0123456789ab.tar.gz",
    );
    const vm = one(seen, "gcp:compute/instance:Instance");
    assert.ok(unknown((vm.inputs.bootDisk as Loose).initializeParams.image));
    assert.equal((vm.inputs.networkInterfaces as Loose)[0].nicType, "VIRTIO_NET");
    const wait = one(seen, "pulumi-nodejs:dynamic/pulumi-mirage:GceSerialWait");
    assert.ok(unknown(wait.inputs.instances));
  });
});

describe("gcp.UnikernelService given a DiskImage", () => {
  it("uploads the program's own gce DiskImage, boot arguments and all, and makes none", async () => {
    const seen = await mockStack(GOOD_KERNEL);
    const diskImage = new DiskImage("own", {
      kernel: kernel(),
      format: "gce",
      bootArgs: ["--port=8080"],
    });
    const service = new gcp.UnikernelService("web", {
      unikernel: diskImage,
      project: PROJECT,
      zone: ZONE,
      bucket: "b",
    });
    await value(service.imageSelfLink, "imageSelfLink");
    await outputsDone(service.urn);
    assert.equal(service.diskImage, diskImage);
    assert.deepEqual(
      byType(seen, "pulumi-nodejs:dynamic/pulumi-mirage:DiskImage").map((r) => r.name),
      ["own"],
    );
    const upload = one(seen, "gcp:storage/bucketObject:BucketObject");
    assert.equal(upload.inputs.name, "web-0123456789ab.tar.gz");
    // Which kernel it runs, from the image: the toolchain's version is not known there.
    assert.deepEqual(one(seen, "gcp:compute/instance:Instance").inputs.labels, {
      "mirage-unikernel": "web",
      "mirage-kernel-sha256": KERNEL_SHA.slice(0, 32),
    });
  });

  it("refuses one not made for GCE at preview, and boot arguments or a host beside it", async () => {
    await mockStack(GOOD_KERNEL, true);
    const errors = await programErrors(() => {
      const raw = new DiskImage("raw", { kernel: kernel(), format: "raw" });
      new gcp.UnikernelService("web", { unikernel: raw, zone: ZONE, bucket: "b" });
    });
    assert.equal(
      errors[0],
      'gcp.UnikernelService web: unikernel must be a DiskImage of format "gce", not "raw": make it with format: "gce", or give its Unikernel',
    );
    const image = new DiskImage("gce", { kernel: kernel(), format: "gce" });
    assert.throws(
      () => new gcp.UnikernelService("web", { unikernel: image, bootArgs: ["--port=80"] }),
      /^Error: gcp\.UnikernelService web: bootArgs are the image's own with a DiskImage as unikernel: give them to its DiskImage instead$/,
    );
    assert.throws(
      () => new gcp.UnikernelService("web", { unikernel: image, host: { tender: "/solo5-spt" } }),
      /unikernel is a DiskImage, and a host runs a kernel under its tender: give the spt or hvt Unikernel itself/,
    );
  });
});

describe("gcp.UnikernelService refuses", () => {
  const refuse = async (args: Partial<gcp.UnikernelServiceArgs>, message: RegExp, name = "web") => {
    await mockStack(GOOD_KERNEL, true);
    assert.throws(() => new gcp.UnikernelService(name, { unikernel: kernel(), ...args }), message);
  };
  /** Builds a service the component accepts, and lets it finish registering before the test ends. */
  const accepted = async (name: string, args: Omit<gcp.UnikernelServiceArgs, "unikernel">) => {
    const service = new gcp.UnikernelService(name, { unikernel: kernel(), ...args });
    await outputsDone(service.urn);
  };

  for (const machineType of ["c3-standard-4", "c4-standard-2", "n4-standard-2", "t2a-standard-1"]) {
    it(`the gVNIC-only machine type ${machineType}`, () =>
      refuse(
        { machineType },
        new RegExp(
          `machineType "${machineType}" is a ${machineType.split("-")[0]} machine, which offers only gVNIC network interfaces.*Use one of the families e2,`,
        ),
      ));
  }

  it("an unknown machine family, and accepts custom and URL forms of known ones", async () => {
    await refuse(
      { machineType: "zz9-standard-2" },
      /machineType "zz9-standard-2" is not a machine family known to offer virtio-net/,
    );
    await mockStack(GOOD_KERNEL, true);
    for (const machineType of [
      "n2-custom-2-4096",
      `zones/${ZONE}/machineTypes/e2-small`,
      "n1-standard-1",
    ]) {
      await accepted(`ok${machineType.length}`, { bucket: "b", machineType });
    }
  });

  it("bad replicas, ports, source ranges, labels, waitFor and names, naming the property", async () => {
    await refuse({ replicas: 0 }, /replicas must be a whole number, at least 1, not 0/);
    await refuse(
      { ports: [8080, 70000] },
      /ports\[1\] must be a port number from 1 to 65535, not 70000/,
    );
    await refuse(
      { ports: [{ port: 80, protocol: "sctp" as "tcp" }] },
      /ports\[0\]\.protocol must be "tcp" or "udp"/,
    );
    await refuse(
      { sourceRanges: ["10.0.0.0"] },
      /sourceRanges\[0\] "10.0.0.0" is not a CIDR range/,
    );
    await refuse(
      { sourceRanges: ["10.0.0.0/33"] },
      /sourceRanges\[0\] "10.0.0.0\/33" is not a CIDR range/,
    );
    await refuse({ sourceRanges: [] }, /sourceRanges is empty/);
    await refuse(
      { labels: Object.fromEntries(Array.from({ length: 62 }, (_, i) => [`l${i}`, "x"])) },
      /labels has 62 labels; GCE allows 64, 3 of which this component sets/,
    );
    await refuse({ labels: { Team: "edge" } }, /labels key "Team" is not a valid label key/);
    await refuse(
      { labels: { team: "Edge Team" } },
      /labels\["team"\] "Edge Team" is not a valid label value/,
    );
    await refuse(
      { waitFor: { console: "(" } },
      /waitFor\.console is not a valid regular expression/,
    );
    await refuse({ waitFor: { serial: "(" } }, /waitFor\.serial is not a valid regular expression/);
    await refuse(
      { waitFor: { console: "x", serial: "y" } as never },
      /waitFor\.serial is console's former name, and console is given too: keep console only/,
    );
    await refuse(
      { waitFor: { console: "x", timeoutSeconds: -1 } },
      /waitFor\.timeoutSeconds must be a positive number of seconds, at most 2147483, not -1/,
    );
    await refuse(
      { subnetwork: "projects/p/regions/r/subnetworks/s" },
      /subnetwork is given without network: give the network the subnetwork belongs to/,
    );
    await refuse(
      {},
      /name "Web_Service" is not usable in Compute Engine resource names/,
      "Web_Service",
    );
  });

  it("a group with no TCP port to health-check, or a bad health check", async () => {
    await refuse(
      { replicas: 3, ports: [{ port: 53, protocol: "udp" }] },
      /healthCheck is needed for a group of 3 VMs, and no TCP port is declared to check: declare the service's TCP port in ports/,
    );
    await refuse(
      { replicas: 2, ports: [80], healthCheck: { httpPath: "healthz" } },
      /healthCheck.httpPath "healthz" must be a URL path starting with "\/"/,
    );
    await refuse(
      { replicas: 2, ports: [80], healthCheck: { minReadySec: -1 } },
      /healthCheck.minReadySec must be a whole number of seconds from 0 to 3600, not -1/,
    );
    // One VM needs no port: its boot wait gates it.
    await mockStack(GOOD_KERNEL, true);
    await accepted("solo", { bucket: "b" });
  });

  it("a static address it cannot honour", async () => {
    await refuse(
      { staticIp: true, publicIp: false },
      /staticIp is the VM's public address, and publicIp is false: drop one of them/,
    );
    await refuse(
      { staticIp: true, replicas: 3, ports: [8080, { port: 53, protocol: "udp" }] },
      /staticIp for a group is a proxy load balancer, which forwards TCP ports only \(UDP port 53 would not be reachable there\)/,
    );
  });
});

describe("examples/gce", () => {
  /** Runs the example with the stack config `pulumi config set` would give it. */
  async function runExampleWith(config: { replicas: number; staticIp: boolean }) {
    const seen = await mockStack(GOOD_KERNEL, false, "pulumi-mirage-gce");
    pulumi.runtime.setAllConfig({
      "pulumi-mirage-gce:project": PROJECT,
      "pulumi-mirage-gce:region": "europe-west1",
      "pulumi-mirage-gce:zone": ZONE,
      "pulumi-mirage-gce:replicas": String(config.replicas),
      "pulumi-mirage-gce:staticIp": String(config.staticIp),
      "pulumi-mirage-gce:kernel": "/prebuilt/web.virtio",
    });
    return { seen, outputs: runExample("gce") };
  }

  it("deploys examples/web: one e2-micro VM on an MTU 1500 network, 8080 open, boot awaited", async () => {
    const { seen, outputs } = await runExampleWith({ replicas: 1, staticIp: false });
    assert.equal(await value(outputs.url, "url"), "http://203.0.113.7:8080/");
    await value(outputs.booted, "booted");
    assert.deepEqual(await value(outputs.serialConsole, "serialConsole"), [
      `gcloud compute instances get-serial-port-output web-vm-1a2b3c4 --zone ${ZONE} --project ${PROJECT}`,
    ]);
    const kernel = one(seen, "pulumi-nodejs:dynamic/pulumi-mirage:Unikernel");
    assert.deepEqual(
      { kernel: kernel.inputs.kernel, target: kernel.inputs.target },
      { kernel: "/prebuilt/web.virtio", target: "virtio" },
    );
    const vmRes = one(seen, "gcp:compute/instance:Instance");
    assert.equal(vmRes.inputs.project, PROJECT);
    assert.equal(vmRes.inputs.machineType, "e2-micro");
    assert.equal(one(seen, "gcp:compute/network:Network").inputs.mtu, 1500);
    assert.deepEqual(one(seen, "gcp:compute/firewall:Firewall").inputs.allows, [
      { protocol: "tcp", ports: ["8080"] },
    ]);
    assert.equal(one(seen, "gcp:storage/bucket:Bucket").inputs.location, "europe-west1");
    assert.equal(
      one(seen, "pulumi-nodejs:dynamic/pulumi-mirage:GceSerialWait").inputs.pattern,
      "serving HTTP on port 8080",
    );
  });

  it("deploys examples/web as a health-checked group behind one static address", async () => {
    const { seen, outputs } = await runExampleWith({ replicas: 3, staticIp: true });
    assert.equal(await value(outputs.url, "url"), "http://198.51.100.99:8080/");
    assert.deepEqual(await value(outputs.instances, "instances"), ["web-n1", "web-n2", "web-n3"]);
    const component = one(seen, "pulumi-mirage:gcp:UnikernelService");
    await outputsDone(
      `urn:pulumi:dev::pulumi-mirage-gce::pulumi-mirage:gcp:UnikernelService::${component.name}`,
    );
    assert.deepEqual(one(seen, "gcp:compute/healthCheck:HealthCheck").inputs.tcpHealthCheck, {
      port: 8080,
    });
    assert.equal(
      one(seen, "gcp:compute/globalForwardingRule:GlobalForwardingRule").inputs.portRange,
      "8080",
    );
    assert.equal(one(seen, "gcp:compute/network:Network").inputs.mtu, 1500);
    assert.equal(
      one(seen, "pulumi-nodejs:dynamic/pulumi-mirage:GceSerialWait").inputs.pattern,
      "serving HTTP on port 8080",
    );
  });
});
