// What `pulumi preview` shows of a program under Pulumi's mocks: the errors its registrations
// fail with, when a component refuses a value it learns only from an output.
/**
 * The errors a program fails with while `make` registers its resources. They surface as rejected
 * registrations, so they are collected here instead of failing the test run (node:test's own
 * handlers are put back afterwards). An error in an output is reported by each resource that
 * takes it; the first is the one preview shows first.
 */
export async function programErrors(make: () => void): Promise<string[]> {
  const errors: string[] = [];
  const theirs = process.listeners("unhandledRejection");
  process.removeAllListeners("unhandledRejection");
  // Without the prefixes the serializer adds for each property it was serializing.
  const mine = (reason: unknown) =>
    errors.push(
      String((reason as Error)?.message ?? reason).replace(
        /^(error serializing property "[^"]*": )+/,
        "",
      ),
    );
  process.on("unhandledRejection", mine);
  try {
    make();
    await new Promise((resolve) => setTimeout(resolve, 1000));
    // The failed registrations never settle: forget them, or the runtime fails the process at
    // exit for "leaked" promises.
    require("@pulumi/pulumi/runtime/debuggable").leakedPromises();
  } finally {
    process.off("unhandledRejection", mine);
    for (const listener of theirs) process.on("unhandledRejection", listener);
  }
  return errors;
}
