// Drives our dynamic resources the way the Pulumi engine does: the real
// @pulumi/pulumi/cmd/dynamic-provider process, started from a consumer project that installed this
// package's `npm pack` tarball, called over gRPC with `__provider` serialized exactly as
// pulumi.dynamic.Resource serializes it. A minimal Engine service records what the provider logs.
//
//   const p = await startDynamicProvider();
//   const { inputs } = await p.check("unikernel", {}, { source, target: "virtio" });
//   const { id, outs } = await p.create("unikernel", inputs);
//   await p.stop();
//
// Property bags are plain JSON as the engine sends them: `UNKNOWN` marks a value not known at
// preview, `secret(v)` a secret. The dynamic provider does not accept secrets, so, like the engine,
// the harness sends their plaintext and marks outputs secret where an input of the same name was.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { createRequire } from "node:module";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import type * as grpcType from "@grpc/grpc-js";
import type * as engineGrpcType from "@pulumi/pulumi/proto/engine_grpc_pb";
import type * as engineType from "@pulumi/pulumi/proto/engine_pb";
import type * as providerGrpcType from "@pulumi/pulumi/proto/provider_grpc_pb";
import type * as providerType from "@pulumi/pulumi/proto/provider_pb";
import type * as emptyType from "google-protobuf/google/protobuf/empty_pb";
import type * as structType from "google-protobuf/google/protobuf/struct_pb";
import type { EngineModule } from "../../sdk/engine";
import { consumerProject } from "./consumer";

/** The value the engine sends for an input not known yet (preview). */
export const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";
const SIG_KEY = "4dabf18193072939515e22adb298388d";
const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";
const PROVIDER_KEY = "__provider";

export type Props = Record<string, unknown>;
export interface Secret {
  [SIG_KEY]: typeof SECRET_SIG;
  value: unknown;
}

/** Marks a property value secret, as the engine's property values do. */
export function secret(value: unknown): Secret {
  return { [SIG_KEY]: SECRET_SIG, value };
}

export function isSecret(value: unknown): value is Secret {
  return (
    typeof value === "object" &&
    value !== null &&
    (value as Record<string, unknown>)[SIG_KEY] === SECRET_SIG
  );
}

/** The value with every secret replaced by its plaintext. */
export function reveal(value: unknown): unknown {
  if (isSecret(value)) return reveal(value.value);
  if (Array.isArray(value)) return value.map(reveal);
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, reveal(v)]));
  }
  return value;
}

function containsSecrets(value: unknown): boolean {
  if (isSecret(value)) return true;
  if (Array.isArray(value)) return value.some(containsSecrets);
  if (typeof value === "object" && value !== null)
    return Object.values(value).some(containsSecrets);
  return false;
}

function isPlainObject(value: unknown): value is Props {
  return typeof value === "object" && value !== null && !Array.isArray(value) && !isSecret(value);
}

/**
 * The engine's annotateSecrets (pkg/resource/plugin/provider_plugin.go): for each input key, an
 * output of the same key becomes secret if the input contained a secret; objects are recursed into.
 */
function annotateSecrets(outs: Props, ins: Props): Props {
  const result: Props = { ...outs };
  for (const [key, inValue] of Object.entries(ins)) {
    if (!(key in result)) continue;
    const outValue = result[key];
    if (isPlainObject(outValue) && isPlainObject(inValue)) {
      result[key] = annotateSecrets(outValue, inValue);
    } else if (!isSecret(outValue) && containsSecrets(inValue)) {
      result[key] = secret(outValue);
    }
  }
  return result;
}

/** Drops undefined object properties (the SDK never sends them; Struct cannot hold them). */
function defined(value: unknown): unknown {
  if (Array.isArray(value)) return value.map((v) => (v === undefined ? null : defined(v)));
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(
      Object.entries(value)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => [k, defined(v)]),
    );
  }
  return value;
}

/** A failure the provider returned over gRPC; `message` is the provider's error text. */
export class ProviderCallError extends Error {
  constructor(
    readonly method: string,
    readonly code: number,
    message: string,
  ) {
    super(message);
    this.name = "ProviderCallError";
  }
}

export interface CheckResult {
  inputs: Props;
  failures: { property: string; reason: string }[];
}
export interface DiffResult {
  /** true: DIFF_SOME, false: DIFF_NONE, undefined: DIFF_UNKNOWN (the provider left it out). */
  changes: boolean | undefined;
  replaces: string[];
  deleteBeforeReplace: boolean;
}

export interface DynamicProvider {
  /** The consumer project the provider runs in (its cwd). */
  readonly consumerDir: string;
  /** The provider process id (the leader of its own process group). */
  readonly pid: number;
  /** Every line the provider logged: Engine Log calls, stdout after the port, stderr. */
  readonly logs: string[];
  /** The `__provider` text sent for an engine module. */
  serializedProvider(module: EngineModule): Promise<string>;
  check(module: EngineModule, olds: Props, news: Props): Promise<CheckResult>;
  diff(module: EngineModule, id: string, olds: Props, news: Props): Promise<DiffResult>;
  create(module: EngineModule, inputs: Props): Promise<{ id: string; outs: Props }>;
  read(
    module: EngineModule,
    id: string,
    props: Props,
  ): Promise<{ id: string; props: Props; inputs: Props | undefined }>;
  update(module: EngineModule, id: string, olds: Props, news: Props): Promise<{ outs: Props }>;
  delete(module: EngineModule, id: string, props: Props): Promise<void>;
  /** Kills the provider process group and waits for it to exit; closes the Engine service. */
  stop(): Promise<void>;
}

const TYPE_NAMES: Record<EngineModule, string> = {
  unikernel: "Unikernel",
  "disk-image": "DiskImage",
  "xen-domain": "Domain",
  "local-vm": "LocalVm",
  "local-process": "LocalProcess",
  "local-tap": "LocalTap",
  "gce-serial-wait": "GceSerialWait",
  "ebs-snapshot": "EbsSnapshot",
  "ec2-console-wait": "Ec2ConsoleWait",
  "ec2-refresh-wait": "Ec2RefreshWait",
};

/** Every engine module name sdk/engine.ts knows. */
export const ENGINE_MODULES = Object.keys(TYPE_NAMES) as EngineModule[];

/** The type token pulumi.dynamic.Resource registers: `pulumi-nodejs:dynamic/MODULE:TYPE`. */
export function dynamicType(module: EngineModule): string {
  return `pulumi-nodejs:dynamic/pulumi-mirage:${TYPE_NAMES[module]}`;
}

/** What every per-resource request of the provider protocol carries. */
interface Addressable {
  setUrn(urn: string): unknown;
  setType(type: string): unknown;
  setName(name: string): unknown;
}

const serializations = new Map<string, Promise<Record<string, string>>>();

/**
 * Runs serialize-provider.js in the consumer project and returns its JSON answer. `args` are its
 * mode and names (see that file). Memoized per consumer and arguments.
 */
export function serializeInConsumer(
  consumerDir: string,
  args: string[],
): Promise<Record<string, string>> {
  const key = JSON.stringify([consumerDir, args]);
  let result = serializations.get(key);
  if (!result) {
    result = promisify(execFile)(
      process.execPath,
      [join(__dirname, "serialize-provider.js"), ...args],
      {
        cwd: consumerDir,
        maxBuffer: 64 * 1024 * 1024,
      },
    ).then(({ stdout }) => JSON.parse(stdout) as Record<string, string>);
    serializations.set(key, result);
  }
  return result;
}

interface Loaded {
  grpc: typeof grpcType;
  struct: typeof structType;
  empty: typeof emptyType;
  provider: typeof providerType;
  providerGrpc: typeof providerGrpcType;
  engine: typeof engineType;
  engineGrpc: typeof engineGrpcType;
}

/** The gRPC and protobuf modules from the copy the consumer's @pulumi/pulumi resolves. */
function load(consumerDir: string): Loaded {
  const pulumiRequire = createRequire(
    join(consumerDir, "node_modules", "@pulumi", "pulumi", "package.json"),
  );
  return {
    grpc: pulumiRequire("@grpc/grpc-js"),
    struct: pulumiRequire("google-protobuf/google/protobuf/struct_pb"),
    empty: pulumiRequire("google-protobuf/google/protobuf/empty_pb"),
    provider: pulumiRequire("./proto/provider_pb"),
    providerGrpc: pulumiRequire("./proto/provider_grpc_pb"),
    engine: pulumiRequire("./proto/engine_pb"),
    engineGrpc: pulumiRequire("./proto/engine_grpc_pb"),
  };
}

/** Serves the Engine service's Log method, recording each message; other methods are unimplemented. */
async function startEngine(m: Loaded, logs: string[]): Promise<{ address: string; close(): void }> {
  const server = new m.grpc.Server();
  server.addService(m.engineGrpc.EngineService, {
    log: (
      call: grpcType.ServerUnaryCall<engineType.LogRequest, unknown>,
      callback: grpcType.sendUnaryData<unknown>,
    ) => {
      const severity = Object.entries(m.engine.LogSeverity).find(
        ([, value]) => value === call.request.getSeverity(),
      )?.[0];
      logs.push(`${(severity ?? "log").toLowerCase()}: ${call.request.getMessage()}`);
      callback(null, new m.empty.Empty());
    },
  } as unknown as grpcType.UntypedServiceImplementation);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", m.grpc.ServerCredentials.createInsecure(), (error, p) =>
      error ? reject(error) : resolve(p),
    ),
  );
  return { address: `127.0.0.1:${port}`, close: () => server.forceShutdown() };
}

/** Starts the provider process and resolves with it and its port (its first stdout line). */
function spawnProvider(
  consumerDir: string,
  engineAddress: string,
  env: Record<string, string>,
  wrapper: string[],
  logs: string[],
): Promise<{ child: ChildProcess; port: number }> {
  const script = join(
    consumerDir,
    "node_modules",
    "@pulumi",
    "pulumi",
    "cmd",
    "dynamic-provider",
    "index.js",
  );
  // The engine passes its own address as the argument; the SDK's log functions reach it through
  // PULUMI_NODEJS_ENGINE, so pulumi.log calls in provider code land in our Engine service.
  const command = [...wrapper, process.execPath, script, engineAddress];
  const child = spawn(command[0], command.slice(1), {
    cwd: consumerDir,
    env: { ...process.env, ...env, PULUMI_NODEJS_ENGINE: engineAddress },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  return new Promise((resolve, reject) => {
    let port: number | undefined;
    const stdout = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    stdout.on("line", (line) => {
      if (port !== undefined) {
        logs.push(line);
        return;
      }
      port = Number.parseInt(line, 10);
      if (Number.isInteger(port) && port > 0) resolve({ child, port });
      else reject(new Error(`dynamic provider printed "${line}" where its port was expected`));
    });
    createInterface({ input: child.stderr as NodeJS.ReadableStream }).on("line", (line) =>
      logs.push(line),
    );
    child.once("error", reject);
    child.once("exit", (code, signal) => {
      if (port === undefined) {
        reject(
          new Error(
            `dynamic provider exited (${signal ?? code}) before printing its port:\n${logs.join("\n")}`,
          ),
        );
      }
    });
  });
}

/** Calls one unary method of the ResourceProvider client, turning gRPC errors into ProviderCallError. */
function call<Req, Res>(client: grpcType.Client, method: string, request: Req): Promise<Res> {
  type Unary = (
    request: Req,
    callback: (error: grpcType.ServiceError | null, response: Res) => void,
  ) => void;
  const fn = (client as unknown as Record<string, Unary>)[method];
  return new Promise((resolve, reject) => {
    fn.call(client, request, (error, response) => {
      if (error) reject(new ProviderCallError(method, error.code, error.details || error.message));
      else resolve(response);
    });
  });
}

export interface StartOptions {
  /** Extra environment variables for the provider process (and so for the tools it runs). */
  env?: Record<string, string>;
  /**
   * A command to run the provider under, which must exec it (keeping the pid), e.g.
   * `["setpriv", "--bounding-set", "-net_admin", "--"]`. Default: none.
   */
  wrapper?: string[];
}

/**
 * Starts the dynamic-provider process in the consumer project (packing and installing the
 * package first if needed), configures it as the engine does, and returns a typed client.
 */
export async function startDynamicProvider(options: StartOptions = {}): Promise<DynamicProvider> {
  const consumerDir = await consumerProject();
  const m = load(consumerDir);
  const logs: string[] = [];
  const engine = await startEngine(m, logs);
  let child: ChildProcess;
  let port: number;
  try {
    ({ child, port } = await spawnProvider(
      consumerDir,
      engine.address,
      options.env ?? {},
      options.wrapper ?? [],
      logs,
    ));
  } catch (error) {
    engine.close();
    throw error;
  }
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once("exit", () => resolve());
  });
  const killGroup = (signal: NodeJS.Signals) => {
    try {
      process.kill(-(child.pid as number), signal);
    } catch {
      // Already gone.
    }
  };
  // Never leave a provider behind when a test process ends early.
  const onExit = () => killGroup("SIGKILL");
  process.once("exit", onExit);

  const client = new m.providerGrpc.ResourceProviderClient(
    `127.0.0.1:${port}`,
    m.grpc.credentials.createInsecure(),
  ) as unknown as grpcType.Client;

  // The engine configures a provider before using it and learns whether it accepts secrets.
  const configure = new m.provider.ConfigureRequest();
  configure.setArgs(m.struct.Struct.fromJavaScript({}));
  configure.setAcceptsecrets(true);
  configure.setAcceptresources(true);
  const configured = await call<providerType.ConfigureRequest, providerType.ConfigureResponse>(
    client,
    "configure",
    configure,
  );
  const acceptsSecrets = configured.getAcceptsecrets();

  const providers = new Map<EngineModule, string>();
  const serializedProvider = async (module: EngineModule): Promise<string> => {
    let text = providers.get(module);
    if (text === undefined) {
      text = (await serializeInConsumer(consumerDir, ["engine", module]))[module];
      providers.set(module, text);
    }
    return text;
  };

  /** A property bag on the wire: with `__provider`, secrets as plaintext unless accepted. */
  const toStruct = async (module: EngineModule, props: Props, withProvider = true) => {
    const bag: Props = { ...props };
    if (withProvider && !(PROVIDER_KEY in bag))
      bag[PROVIDER_KEY] = await serializedProvider(module);
    const wire = defined(acceptsSecrets ? bag : reveal(bag)) as Record<
      string,
      structType.JavaScriptValue
    >;
    return m.struct.Struct.fromJavaScript(wire);
  };
  /** A property bag from the wire, without `__provider`, secrets annotated from `ins`. */
  const fromStruct = (struct: structType.Struct | undefined, ins: Props): Props => {
    const props = (struct?.toJavaScript() ?? {}) as Props;
    delete props[PROVIDER_KEY];
    return annotateSecrets(props, ins);
  };
  /** Names the one resource every request is about, as the engine would. */
  const addressed = <R extends Addressable>(request: R, module: EngineModule): R => {
    request.setUrn(`urn:pulumi:test::consumer::${dynamicType(module)}::resource`);
    request.setType(dynamicType(module));
    request.setName("resource");
    return request;
  };

  let stopped = false;
  return {
    consumerDir,
    pid: child.pid as number,
    logs,
    serializedProvider,

    async check(module, olds, news) {
      const request = addressed(new m.provider.CheckRequest(), module);
      // A new resource has no old inputs at all, not even `__provider`.
      request.setOlds(await toStruct(module, olds, Object.keys(olds).length > 0));
      request.setNews(await toStruct(module, news));
      const response = await call<providerType.CheckRequest, providerType.CheckResponse>(
        client,
        "check",
        request,
      );
      return {
        inputs: fromStruct(response.getInputs(), news),
        failures: response
          .getFailuresList()
          .map((f) => ({ property: f.getProperty(), reason: f.getReason() })),
      };
    },

    async diff(module, id, olds, news) {
      const request = addressed(new m.provider.DiffRequest(), module);
      request.setId(id);
      request.setOlds(await toStruct(module, olds));
      request.setNews(await toStruct(module, news));
      const response = await call<providerType.DiffRequest, providerType.DiffResponse>(
        client,
        "diff",
        request,
      );
      const Changes = m.provider.DiffResponse.DiffChanges;
      const changes = response.getChanges();
      return {
        changes:
          changes === Changes.DIFF_SOME ? true : changes === Changes.DIFF_NONE ? false : undefined,
        replaces: response.getReplacesList(),
        deleteBeforeReplace: response.getDeletebeforereplace(),
      };
    },

    async create(module, inputs) {
      const request = addressed(new m.provider.CreateRequest(), module);
      request.setProperties(await toStruct(module, inputs));
      const response = await call<providerType.CreateRequest, providerType.CreateResponse>(
        client,
        "create",
        request,
      );
      return { id: response.getId(), outs: fromStruct(response.getProperties(), inputs) };
    },

    async read(module, id, props) {
      const request = addressed(new m.provider.ReadRequest(), module);
      request.setId(id);
      request.setProperties(await toStruct(module, props));
      const response = await call<providerType.ReadRequest, providerType.ReadResponse>(
        client,
        "read",
        request,
      );
      const inputs = response.getInputs();
      return {
        id: response.getId(),
        props: fromStruct(response.getProperties(), props),
        inputs: inputs ? fromStruct(inputs, props) : undefined,
      };
    },

    async update(module, id, olds, news) {
      const request = addressed(new m.provider.UpdateRequest(), module);
      request.setId(id);
      request.setOlds(await toStruct(module, olds));
      request.setNews(await toStruct(module, news));
      const response = await call<providerType.UpdateRequest, providerType.UpdateResponse>(
        client,
        "update",
        request,
      );
      return { outs: fromStruct(response.getProperties(), news) };
    },

    async delete(module, id, props) {
      const request = addressed(new m.provider.DeleteRequest(), module);
      request.setId(id);
      request.setProperties(await toStruct(module, props));
      await call(client, "delete", request);
    },

    async stop() {
      if (stopped) return;
      stopped = true;
      client.close();
      killGroup("SIGTERM");
      const timer = setTimeout(() => killGroup("SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
      // Whatever the provider started in its group goes with it.
      killGroup("SIGKILL");
      process.removeListener("exit", onExit);
      engine.close();
    },
  };
}
