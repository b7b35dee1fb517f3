import {
  type Document,
  isAlias,
  isMap,
  isNode,
  isScalar,
  isSeq,
  type LineCounter,
  type Node,
  type YAMLMap,
  type YAMLSeq,
} from "yaml";
import type { ExpressionIssue } from "./expressions.ts";
import type { WorkflowProblem } from "./workflow-errors.ts";

/** Collects problems with their file position, so one parse reports all of them. */
export class ProblemCollector {
  readonly problems: WorkflowProblem[] = [];

  constructor(
    readonly file: string,
    private readonly source: string,
    private readonly lineCounter: LineCounter,
  ) {}

  at(offset: number, key: string, message: string): void {
    const { line, col } = this.lineCounter.linePos(offset);
    this.problems.push({ file: this.file, line, column: col, key, message });
  }

  atNode(node: Node | undefined, key: string, message: string, fallbackOffset = 0): void {
    this.at(node?.range?.[0] ?? fallbackOffset, key, message);
  }

  /**
   * Reports issues found in `value`, the parsed text of `node`. Each expression is looked up in the
   * node's source (the n-th identical expression for the n-th issue), because block scalars, quoting
   * and folding make offsets in the value differ from offsets in the file.
   */
  expressionIssues(node: Node, key: string, value: string, issues: readonly ExpressionIssue[]): void {
    const [start = 0, end = start] = node.range ?? [];
    const source = this.source.slice(start, end);
    for (const issue of issues) {
      let occurrence = 0;
      for (
        let i = value.indexOf(issue.expression);
        i >= 0 && i < issue.offset;
        i = value.indexOf(issue.expression, i + 1)
      ) {
        occurrence++;
      }
      let found = -1;
      for (let n = 0; n <= occurrence; n++) {
        found = source.indexOf(issue.expression, found + 1);
        if (found < 0) break;
      }
      this.at(found < 0 ? start : start + found, key, issue.message);
    }
  }
}

export interface Entry {
  name: string;
  /** Dotted path of this entry, e.g. `jobs.build.env`. */
  key: string;
  keyNode: Node;
  value: Node | undefined;
}

export function childKey(parent: string, name: string): string {
  return parent === "" ? name : `${parent}.${name}`;
}

function describe(node: Node | undefined): string {
  if (isMap(node)) return "a mapping";
  if (isSeq(node)) return "a list";
  if (isScalar(node))
    return node.value === null
      ? "empty"
      : `${typeof node.value === "string" ? "the string" : typeof node.value} \`${String(node.source ?? node.value)}\``;
  return "empty";
}

/** Typed access to YAML nodes that reports, rather than throws, when a node has the wrong shape. */
export class YamlReader {
  constructor(
    private readonly doc: Document.Parsed,
    readonly problems: ProblemCollector,
  ) {}

  node(value: unknown): Node | undefined {
    if (isAlias(value)) return value.resolve(this.doc) as Node | undefined;
    return isNode(value) ? value : undefined;
  }

  toJS(node: Node | undefined): unknown {
    return node?.toJS(this.doc, { maxAliasCount: 100 });
  }

  mapping(node: Node | undefined, key: string): YAMLMap | undefined {
    if (isMap(node)) return node;
    this.problems.atNode(node, key, `must be a mapping, not ${describe(node)}`);
    return undefined;
  }

  sequence(node: Node | undefined, key: string): YAMLSeq | undefined {
    if (isSeq(node)) return node;
    this.problems.atNode(node, key, `must be a list, not ${describe(node)}`);
    return undefined;
  }

  entries(map: YAMLMap, parentKey: string): Entry[] {
    const entries: Entry[] = [];
    for (const pair of map.items) {
      const keyNode = this.node(pair.key);
      if (!isScalar(keyNode) || typeof keyNode.value !== "string") {
        this.problems.atNode(keyNode, parentKey, `keys must be strings, not ${describe(keyNode)}`, map.range?.[0]);
        continue;
      }
      entries.push({
        name: keyNode.value,
        key: childKey(parentKey, keyNode.value),
        keyNode,
        value: this.node(pair.value),
      });
    }
    return entries;
  }

  /**
   * Returns the entries by name. Names in `rejected` are reported with their own message; any other
   * name outside `allowed` is reported with the list of allowed names. Names in `handledElsewhere` are
   * left to the caller.
   */
  keyed(
    map: YAMLMap,
    parentKey: string,
    allowed: readonly string[],
    rejected: Readonly<Record<string, string>> = {},
    handledElsewhere: readonly string[] = [],
  ): Map<string, Entry> {
    const byName = new Map<string, Entry>();
    for (const entry of this.entries(map, parentKey)) {
      if (handledElsewhere.includes(entry.name)) continue;
      const reason = rejected[entry.name];
      if (reason !== undefined) this.problems.atNode(entry.keyNode, entry.key, reason);
      else if (!allowed.includes(entry.name)) {
        this.problems.atNode(
          entry.keyNode,
          entry.key,
          `unknown key \`${entry.name}\`; allowed here: ${allowed.join(", ")}`,
        );
      } else byName.set(entry.name, entry);
    }
    return byName;
  }

  /** A scalar as text (numbers and booleans as written); `empty` is returned for a null value. */
  text(node: Node | undefined, key: string, empty?: string): string | undefined {
    if (isScalar(node)) {
      if (node.tag !== undefined && !node.tag.startsWith("tag:yaml.org,2002:")) {
        this.problems.atNode(node, key, `YAML reads \`${node.tag}\` as a tag: put the whole value in quotes`);
        return undefined;
      }
      const value = node.value;
      if (typeof value === "string") return value;
      if (typeof value === "number" || typeof value === "boolean") return node.source ?? String(value);
      if (value === null && empty !== undefined) return empty;
    }
    this.problems.atNode(node, key, `must be a string, not ${describe(node)}`);
    return undefined;
  }

  boolean(node: Node | undefined, key: string): boolean | undefined {
    if (isScalar(node) && typeof node.value === "boolean") return node.value;
    this.problems.atNode(node, key, `must be true or false, not ${describe(node)}`);
    return undefined;
  }

  positiveNumber(node: Node | undefined, key: string): number | undefined {
    if (isScalar(node) && typeof node.value === "number" && Number.isFinite(node.value) && node.value > 0) {
      return node.value;
    }
    this.problems.atNode(node, key, `must be a number of minutes greater than 0, not ${describe(node)}`);
    return undefined;
  }

  /** A string, or a list of strings. */
  stringList(node: Node | undefined, key: string): string[] {
    if (!isSeq(node)) {
      const one = this.text(node, key);
      return one === undefined ? [] : [one];
    }
    const items: string[] = [];
    node.items.forEach((item, i) => {
      const text = this.text(this.node(item), `${key}[${i}]`);
      if (text !== undefined) items.push(text);
    });
    return items;
  }
}
