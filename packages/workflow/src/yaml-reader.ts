import {
  type Alias,
  type Document,
  isAlias,
  isMap,
  isNode,
  isScalar,
  isSeq,
  type LineCounter,
  type Node,
  visit,
  type YAMLMap,
  type YAMLSeq,
} from "yaml";
import type { ExpressionIssue } from "./expressions.ts";
import { adviseKey } from "./key-suggestions.ts";
import type { WorkflowProblem } from "./workflow-errors.ts";

/** A file with more problems is not worth reading further: the first ones are what to fix. */
const MAX_PROBLEMS = 500;

/**
 * Alias uses a reader resolves in one document. Hand-written workflows use a few anchors, read once
 * per matrix combination at most; aliases that refer to aliases multiply (a "billion laughs"), and
 * would make every walk over the document exponential without this bound.
 */
const MAX_ALIAS_USES = 20_000;

/** Collects problems with their file position, so one parse reports all of them. */
export class ProblemCollector {
  readonly problems: WorkflowProblem[] = [];

  constructor(
    readonly file: string,
    private readonly source: string,
    private readonly lineCounter: LineCounter,
  ) {}

  at(offset: number, key: string, message: string, suggestion?: string): void {
    if (this.problems.length > MAX_PROBLEMS) return;
    if (this.problems.length === MAX_PROBLEMS) {
      message = `more than ${MAX_PROBLEMS} problems; the rest are not reported`;
      suggestion = "fix the problems above and check again";
    }
    const { line, col } = this.lineCounter.linePos(offset);
    this.problems.push({
      file: this.file,
      line,
      column: col,
      key,
      message,
      ...(suggestion === undefined ? {} : { suggestion }),
    });
  }

  atNode(
    node: Node | undefined,
    key: string,
    message: string,
    { suggestion, fallbackOffset = 0 }: { suggestion?: string | undefined; fallbackOffset?: number | undefined } = {},
  ): void {
    this.at(node?.range?.[0] ?? fallbackOffset, key, message, suggestion);
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
      this.at(found < 0 ? start : start + found, key, issue.message, issue.suggestion);
    }
  }
}

/**
 * Maps each alias to the node of the last anchor of its name before it, as YAML defines; one walk,
 * where `Alias.resolve` walks the whole document for each alias.
 */
function aliasTargets(doc: Document.Parsed): Map<Alias, Node> {
  const anchors = new Map<string, Node>();
  const targets = new Map<Alias, Node>();
  visit(doc, {
    Node(_key, node) {
      if (isAlias(node)) {
        const target = anchors.get(node.source);
        if (target !== undefined) targets.set(node, target);
      } else if (node.anchor !== undefined) anchors.set(node.anchor, node);
    },
  });
  return targets;
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
  /** Each alias's anchored node, found in one walk over the document when the first alias is met. */
  private aliasTargets: Map<Alias, Node> | undefined;
  private aliasUses = 0;

  constructor(
    private readonly doc: Document.Parsed,
    readonly problems: ProblemCollector,
  ) {}

  /** The node `value` is, or the node an alias refers to; undefined for anything else. */
  node(value: unknown): Node | undefined {
    if (isAlias(value)) return this.resolve(value);
    return isNode(value) ? value : undefined;
  }

  private resolve(alias: Alias): Node | undefined {
    this.aliasUses++;
    if (this.aliasUses > MAX_ALIAS_USES) {
      if (this.aliasUses === MAX_ALIAS_USES + 1) {
        this.problems.atNode(alias, "", `YAML aliases are used more than ${MAX_ALIAS_USES} times`, {
          suggestion: "aliases that refer to aliases multiply: write the repeated values out",
        });
      }
      return undefined;
    }
    this.aliasTargets ??= aliasTargets(this.doc);
    return this.aliasTargets.get(alias);
  }

  toJS(node: Node | undefined): unknown {
    return node?.toJS(this.doc, { maxAliasCount: 100 });
  }

  /** Every string scalar in `node` and below it (aliases followed), e.g. to find the expressions in it. */
  scalarTexts(node: Node | undefined): string[] {
    if (isScalar(node)) return typeof node.value === "string" ? [node.value] : [];
    if (isMap(node)) return node.items.flatMap((pair) => this.scalarTexts(this.node(pair.value)));
    if (isSeq(node)) return node.items.flatMap((item) => this.scalarTexts(this.node(item)));
    return [];
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
        this.problems.atNode(keyNode, parentKey, `keys must be strings, not ${describe(keyNode)}`, {
          fallbackOffset: map.range?.[0],
        });
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
   * Returns the entries by name. A name outside `allowed` is reported: a GitHub key Solstice does not
   * run with what to do instead, any other with the allowed names and the one probably meant.
   */
  keyed(map: YAMLMap, parentKey: string, allowed: readonly string[]): Map<string, Entry> {
    const byName = new Map<string, Entry>();
    for (const entry of this.entries(map, parentKey)) {
      if (allowed.includes(entry.name)) {
        byName.set(entry.name, entry);
        continue;
      }
      const { message, suggestion } = adviseKey(parentKey, entry.name, allowed);
      this.problems.atNode(entry.keyNode, entry.key, message, { suggestion });
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
