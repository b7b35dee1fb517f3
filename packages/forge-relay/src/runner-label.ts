/**
 * A runner label as the official runners write it: `name[:schema[:arg]]`. Only `name` goes on the
 * wire; for Solstice the schema is `vm` and the arg is the fleet label that serves the job, e.g.
 * `debian-12:vm:debian-12`. A label without a schema is served by the fleet label of its own name.
 */
export interface RunnerLabel {
  /** What workflows put in `runs-on`. */
  name: string;
  /** The Solstice label (the bus routing key) that runs the job. */
  fleetLabel: string;
  /** As written, kept in the `.runner` file. */
  raw: string;
}

export function parseLabel(raw: string): RunnerLabel {
  const [name = "", schema, ...rest] = raw.split(":");
  const arg = rest.join(":");
  if (name === "" || name.trim() !== name) {
    throw new Error(`label "${raw}": the name before ":" may not be empty or start/end with spaces`);
  }
  if (schema === undefined) return { name, fleetLabel: name, raw };
  if (schema !== "vm" || arg === "") {
    throw new Error(
      `label "${raw}": Solstice runs jobs in VMs; write name:vm:<fleet label> (e.g. ${name}:vm:${name}) or just ${name}`,
    );
  }
  return { name, fleetLabel: arg.replace(/^\/\//, ""), raw };
}
