// opam's depexts during `make depend`: the system packages opam wanted to install, read from its
// output as it streams (OpamSolution prints "The following system packages will first need to be
// installed:" with the packages on the next line, and, when it cannot install them, "This command
// should get the requirements installed:" with the command), so a failure can say what to install.
export class DepextScan {
  packages: string[] = [];
  command: string | undefined;
  private next: "packages" | "command" | undefined;

  /** One line of make depend's output. */
  feed(line: string): void {
    const text = line.trim();
    if (/system packages will first need to be installed:$/.test(text)) this.next = "packages";
    else if (/commands? should get the requirements installed:$/.test(text)) this.next = "command";
    else if (text !== "" && this.next === "packages") {
      this.packages = text.split(/\s+/);
      this.next = undefined;
    } else if (text !== "" && this.next === "command") {
      this.command = text;
      this.next = undefined;
    }
  }

  /** Why make depend failed, when opam was installing system packages; else undefined. */
  failure(): string | undefined {
    if (this.packages.length === 0) return undefined;
    const how = this.command ? `as root: \`${this.command}\`` : "with the system's package manager";
    return (
      `opam could not install the system packages the unikernel's libraries need (depexts): ${this.packages.join(" ")}. ` +
      `Install them by hand ${how}, then run the update again; where they are installed already ` +
      "or cannot be (CI), set depexts: false on the Unikernel so that configure gets --no-depext"
    );
  }
}
