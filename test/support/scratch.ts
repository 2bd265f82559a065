// A test file's scratch directory: made before its tests, removed with everything in it after.
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before } from "node:test";

export class Scratch {
  private dir: string | undefined;
  private made = 0;
  private constructor() {}

  /** A scratch directory named PREFIX… in the system's temporary directory, for this file. */
  static forThisFile(prefix: string): Scratch {
    const scratch = new Scratch();
    before(async () => {
      scratch.dir = await mkdtemp(join(tmpdir(), prefix));
    });
    after(async () => {
      if (scratch.dir !== undefined) await rm(scratch.dir, { recursive: true, force: true });
    });
    return scratch;
  }

  /** The directory (read it in tests and hooks: it is made by the file's `before` hook). */
  get path(): string {
    if (this.dir === undefined) throw new Error("the scratch directory is used before it is made");
    return this.dir;
  }

  /** A new empty directory in it, for one test. */
  async fresh(): Promise<string> {
    const dir = join(this.path, `d${this.made++}`);
    await mkdir(dir);
    return dir;
  }
}
