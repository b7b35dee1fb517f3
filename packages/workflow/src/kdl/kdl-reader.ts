import { type Entry, getLocation, type Node } from "@bgotink/kdl";
import { nearestName } from "../nearest-name.ts";
import type { WorkflowProblem } from "../workflow-errors.ts";

/** A file with more problems is not worth reading further: the first ones are what to fix. */
const MAX_PROBLEMS = 500;

/** A place in the file, 1-based, as KDL's parser counts it. */
export interface Position {
  line: number;
  column: number;
}

const FILE_START: Position = { line: 1, column: 1 };

/** Collects problems with their position, so that one parse reports all of them. */
export class KdlProblems {
  readonly problems: WorkflowProblem[] = [];
  /** A job planned once per image meets a mistake in its shared parts once per image: reported once. */
  private readonly reported = new Set<string>();

  /** Lines as KDL 2 counts them: CRLF, CR, LF, NEL, VT, FF, LS and PS each end one. */
  private readonly lineCount: number;

  constructor(
    readonly file: string,
    private readonly source: string,
  ) {
    this.lineCount = source.split(/\r\n|[\r\n\v\f\u0085\u2028\u2029]/).length;
  }

  at(position: Position, key: string, message: string, suggestion?: string): void {
    const identity = `${position.line}:${position.column}:${key}:${message}`;
    if (this.problems.length > MAX_PROBLEMS || this.reported.has(identity)) return;
    this.reported.add(identity);
    if (this.problems.length === MAX_PROBLEMS) {
      message = `more than ${MAX_PROBLEMS} problems; the rest are not reported`;
      suggestion = "fix the problems above and check again";
    }
    this.problems.push({
      file: this.file,
      // The parser's error positions can fall outside the text (fuzzing found column 0 on a line
      // after the last one): a problem always points into the file.
      line: Math.min(Math.max(1, position.line), this.lineCount),
      column: Math.max(1, position.column),
      key,
      message,
      ...(suggestion === undefined ? {} : { suggestion }),
    });
  }

  /** At the start of a node, or of an entry (a property's name). */
  atElement(element: Node | Entry, key: string, message: string, suggestion?: string): void {
    this.at(getLocation(element)?.start ?? FILE_START, key, message, suggestion);
  }

  /** At the start of an entry's value: where a wrong value is. */
  atValue(entry: Entry, key: string, message: string, suggestion?: string): void {
    this.at((getLocation(entry.value) ?? getLocation(entry))?.start ?? FILE_START, key, message, suggestion);
  }

  /**
   * The position of `fragment` inside the source of `entry`'s value (an expression inside a
   * string), or of the value itself when the fragment is not written there as is (escapes).
   */
  inValue(entry: Entry, fragment: string): Position {
    const where = getLocation(entry.value);
    if (where === undefined) return FILE_START;
    const raw = this.source.slice(where.start.offset, where.end.offset);
    const found = raw.indexOf(fragment);
    if (found < 0) return where.start;
    const before = raw.slice(0, found);
    const lineBreak = Math.max(before.lastIndexOf("\n"), before.lastIndexOf("\r"));
    const lines = before.split(/\r\n|\r|\n/).length - 1;
    return lines === 0
      ? { line: where.start.line, column: where.start.column + found }
      : { line: where.start.line + lines, column: found - lineBreak };
  }
}

/** What one kind of node may hold. */
export interface NodeShape {
  /** Its properties (`name=value`); `"any"` for `env`, whose properties are the variables. */
  readonly properties: readonly string[] | "any";
  /** How many arguments it takes, e.g. `os "tiny"` takes exactly one. */
  readonly args: { readonly min: number; readonly max: number; readonly what: string };
  /** The names of its child nodes; none means it has no `{ }` block. */
  readonly children: readonly string[];
}

/** A node whose entries and children were checked against its shape. */
export interface ReadNode {
  readonly node: Node;
  /** Dotted path shown in problems, e.g. `job.build.step[2]`. */
  readonly key: string;
  readonly properties: ReadonlyMap<string, Entry>;
  readonly args: readonly Entry[];
  /** Only the children whose names the shape allows, in order. */
  readonly children: readonly Node[];
}

export const NO_ARGS = { min: 0, max: 0, what: "" } as const;

/** Typed access to KDL nodes that reports, rather than throws, when a node has the wrong shape. */
export class KdlReader {
  constructor(
    readonly problems: KdlProblems,
    /** Where each node name belongs, to tell a misplaced node from a misspelt one. */
    private readonly homes: Readonly<Record<string, string>>,
  ) {}

  read(node: Node, key: string, shape: NodeShape): ReadNode {
    const properties = new Map<string, Entry>();
    const args: Entry[] = [];
    for (const entry of node.entries) {
      const name = entry.getName();
      if (name === null) {
        args.push(entry);
        continue;
      }
      if (shape.properties !== "any" && !shape.properties.includes(name)) {
        this.unknownProperty(node, entry, key, name, shape.properties);
      } else if (properties.has(name)) {
        this.problems.atElement(entry, `${key}.${name}`, `\`${name}\` is given twice; give it once`);
      } else {
        properties.set(name, entry);
      }
    }
    this.checkArgs(node, key, shape, args);
    const children: Node[] = [];
    if (node.children !== null && shape.children.length === 0) {
      this.problems.atElement(node, key, `\`${node.getName()}\` has no child nodes: remove its { } block`);
    }
    for (const child of node.children?.nodes ?? []) {
      const name = child.getName();
      if (shape.children.includes(name)) children.push(child);
      else if (shape.children.length > 0) this.unknownChild(child, key, name, shape.children);
    }
    return { node, key, properties, args, children };
  }

  private unknownProperty(node: Node, entry: Entry, key: string, name: string, allowed: readonly string[]): void {
    const nearest = nearestName(name, allowed);
    const isChild = this.homes[name] !== undefined;
    this.problems.atElement(
      entry,
      `${key}.${name}`,
      `\`${node.getName()}\` has no property \`${name}\`; its properties: ${allowed.join(", ") || "none"}`,
      nearest !== undefined
        ? `did you mean \`${nearest}\`?`
        : isChild
          ? `\`${name}\` is a node: write it on a line of its own ${this.homes[name]}`
          : undefined,
    );
  }

  private checkArgs(node: Node, key: string, shape: NodeShape, args: readonly Entry[]): void {
    const first = args[0];
    if (args.length > shape.args.max && first !== undefined) {
      const extra = args[shape.args.max] ?? first;
      const value = extra.getValue();
      const property = Array.isArray(shape.properties) ? shape.properties[0] : undefined;
      this.problems.atValue(
        extra,
        key,
        shape.args.max === 0
          ? `\`${node.getName()}\` takes no arguments, only properties (name=value)`
          : `\`${node.getName()}\` takes at most ${shape.args.max} argument${shape.args.max === 1 ? "" : "s"}: ${shape.args.what}`,
        shape.args.max === 0 && property !== undefined
          ? `did you mean ${property}=${JSON.stringify(value)}?`
          : undefined,
      );
    } else if (args.length < shape.args.min) {
      this.problems.atElement(node, key, `\`${node.getName()}\` needs ${shape.args.what}`);
    }
  }

  private unknownChild(child: Node, key: string, name: string, allowed: readonly string[]): void {
    const nearest = nearestName(name, allowed);
    const home = this.homes[name];
    this.problems.atElement(
      child,
      key === "" ? name : `${key}.${name}`,
      `unknown node \`${name}\` here; allowed: ${allowed.join(", ")}`,
      nearest !== undefined
        ? `did you mean \`${nearest}\`?`
        : home !== undefined
          ? `\`${name}\` belongs ${home}`
          : undefined,
    );
  }

  /** A string value; numbers and booleans only where `scalar` allows them (env values), as written. */
  text(entry: Entry | undefined, key: string, { scalar = false } = {}): string | undefined {
    if (entry === undefined) return undefined;
    const value = entry.getValue();
    if (typeof value === "string") return value;
    if (scalar && (typeof value === "number" || typeof value === "boolean")) {
      return entry.value.representation ?? String(value);
    }
    this.problems.atValue(entry, key, `must be a string, not ${describe(value)}`, stringHint(value));
    return undefined;
  }

  /** A number of minutes greater than 0. */
  minutes(entry: Entry | undefined, key: string): number | undefined {
    if (entry === undefined) return undefined;
    const value = entry.getValue();
    if (typeof value === "number" && Number.isFinite(value) && value > 0) return value;
    this.problems.atValue(entry, key, `must be a number of minutes greater than 0, not ${describe(value)}`);
    return undefined;
  }

  flag(entry: Entry | undefined, key: string): boolean | undefined {
    if (entry === undefined) return undefined;
    const value = entry.getValue();
    if (typeof value === "boolean") return value;
    this.problems.atValue(entry, key, `must be #true or #false, not ${describe(value)}`);
    return undefined;
  }
}

function describe(value: unknown): string {
  if (value === null) return "#null";
  if (typeof value === "string") return `the string ${JSON.stringify(value)}`;
  return `${typeof value} ${String(value)}`;
}

/** A number where text is wanted (`name=1`): quotes make it text. */
function stringHint(value: unknown): string | undefined {
  return typeof value === "number" ? `put it in quotes: "${String(value)}"` : undefined;
}
