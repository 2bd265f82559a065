// A Pulumi stack's state for our dynamic resources, recorded with one version of the package and
// committed (test/fixtures/), so that later versions are tested against the state users already
// have. Each resource keeps what the engine stores: the inputs the SDK sent, the inputs check
// returned, the outputs, and its serialized provider (`__provider`, kept as it is); the cache's
// index files are kept too. What depends on the machine (scratch paths, hashes of the test kernels
// and of images built from them, process ids) is stored as `{{NAME}}` and filled in at test time.

/** The machine-specific values: name → value (a string, or a number stored as a whole value). */
export type Vars = Record<string, string | number>;

export interface RecordedResource {
  /** The engine module (sdk/engine.ts) whose provider made it. */
  module: string;
  id: string;
  /** What the SDK sent to check. */
  sent: Record<string, unknown>;
  /** What check returned: the inputs the state keeps. */
  inputs: Record<string, unknown>;
  outputs: Record<string, unknown>;
}

export interface StackFixture {
  /** The commit of pulumi-mirage that recorded it. */
  recordedWith: string;
  /** The unikernel source tree: relative path → content. */
  source: Record<string, string>;
  /** The cache's index files: path relative to the cache → content. */
  cacheIndex: Record<string, unknown>;
  resources: Record<string, RecordedResource>;
  /** The `__provider` text the state keeps, by engine module: exactly as recorded. */
  providers: Record<string, string>;
}

const PLACEHOLDER = /\{\{([A-Za-z0-9]+)\}\}/g;

/**
 * `value` with the machine-specific values replaced by `{{NAME}}`: inside strings (and object
 * keys) for string values, whole numbers for numeric ones. Longer strings go first, so a path is
 * not cut by a shorter value inside it.
 */
export function toTemplate(value: unknown, vars: Vars): unknown {
  const strings = Object.entries(vars)
    .filter((entry): entry is [string, string] => typeof entry[1] === "string")
    .sort(([, a], [, b]) => b.length - a.length);
  const text = (s: string) =>
    strings.reduce((result, [name, v]) => result.split(v).join(`{{${name}}}`), s);
  const walk = (v: unknown): unknown => {
    if (typeof v === "string") return text(v);
    if (typeof v === "number") {
      const name = Object.keys(vars).find((key) => vars[key] === v);
      return name === undefined ? v : `{{${name}}}`;
    }
    if (Array.isArray(v)) return v.map(walk);
    if (typeof v === "object" && v !== null)
      return Object.fromEntries(Object.entries(v).map(([k, item]) => [text(k), walk(item)]));
    return v;
  };
  return walk(value);
}

/** The inverse of toTemplate: every `{{NAME}}` filled in from `vars` (a name missing there throws). */
export function fromTemplate<T>(value: T, vars: Vars): T {
  const lookup = (name: string) => {
    if (!(name in vars)) throw new Error(`the fixture names {{${name}}}, which has no value`);
    return vars[name];
  };
  const text = (s: string): string | number => {
    const whole = /^\{\{([A-Za-z0-9]+)\}\}$/.exec(s);
    if (whole) return lookup(whole[1]);
    return s.replace(PLACEHOLDER, (_, name: string) => String(lookup(name)));
  };
  const walk = (v: unknown): unknown => {
    if (typeof v === "string") return text(v);
    if (Array.isArray(v)) return v.map(walk);
    if (typeof v === "object" && v !== null)
      return Object.fromEntries(
        Object.entries(v).map(([k, item]) => [String(text(k)), walk(item)]),
      );
    return v;
  };
  return walk(value) as T;
}
