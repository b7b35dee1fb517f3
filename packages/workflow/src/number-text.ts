import { data } from "@actions/expressions";
import { wellKnownFunctions } from "@actions/expressions/funcs";
import type { FunctionDefinition } from "@actions/expressions/funcs/info";

// The Actions runner writes a number into text with .NET's "G15" format (EvaluationResult's
// ConvertToString): rounded to 15 significant digits, fixed-point while the decimal exponent is
// from -4 to 14, otherwise scientific with an upper-case E, a sign and at least two exponent digits
// (12345678901234567890 → 1.23456789012346E+19, 1e-7 → 1E-07); trailing zeros dropped. The
// library formats with JavaScript's rules instead, so text made from numbers goes through here.

const SIGNIFICANT_DIGITS = 15;

/** A number as the Actions runner writes it into text. */
export function numberToText(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Number.POSITIVE_INFINITY) return "Infinity";
  if (value === Number.NEGATIVE_INFINITY) return "-Infinity";
  // -0 too: GitHub's tables write it as 0.
  if (value === 0) return "0";
  // The exponent after rounding decides the notation: 999999999999999.9 becomes 1E+15.
  const [mantissa = "", exponentText = "0"] = value.toExponential(SIGNIFICANT_DIGITS - 1).split("e");
  const exponent = Number(exponentText);
  if (exponent > -5 && exponent < SIGNIFICANT_DIGITS) {
    return withoutTrailingZeros(value.toFixed(Math.max(0, SIGNIFICANT_DIGITS - 1 - exponent)));
  }
  const digits = String(Math.abs(exponent)).padStart(2, "0");
  return `${withoutTrailingZeros(mantissa)}E${exponent < 0 ? "-" : "+"}${digits}`;
}

function withoutTrailingZeros(text: string): string {
  return text.includes(".") ? text.replace(/\.?0+$/, "") : text;
}

/** A number argument as the text the runner would make of it; anything else as it is. */
function numberAsText(value: data.ExpressionData): data.ExpressionData {
  return value.kind === data.Kind.Number ? new data.StringData(numberToText((value as data.NumberData).value)) : value;
}

/** The library's function, called with its number arguments (or, for an array, items) made text first. */
function withNumberText(
  name: string,
  convert: (args: data.ExpressionData[]) => data.ExpressionData[],
): [string, FunctionDefinition] {
  const builtIn = wellKnownFunctions[name] as FunctionDefinition;
  return [name, { ...builtIn, call: (...args) => builtIn.call(...convert(args)) }];
}

const primitivesAsText = (args: data.ExpressionData[]) => args.map(numberAsText);

/**
 * The built-in functions that turn values into text (format, join, contains, startsWith, endsWith),
 * writing numbers as the runner does. contains() on an array compares items by value, not as text,
 * so only a text search gets its arguments converted.
 */
export const NUMBER_TEXT_FUNCTIONS: ReadonlyMap<string, FunctionDefinition> = new Map([
  withNumberText("format", primitivesAsText),
  withNumberText("startswith", primitivesAsText),
  withNumberText("endswith", primitivesAsText),
  withNumberText("contains", (args) => (args[0]?.primitive ? args.map(numberAsText) : args)),
  withNumberText("join", (args) => {
    const [items, ...rest] = args as [data.ExpressionData, ...data.ExpressionData[]];
    const list =
      items.kind === data.Kind.Array
        ? new data.Array(...(items as data.Array).values().map(numberAsText))
        : numberAsText(items);
    return [list, ...rest.map(numberAsText)];
  }),
]);
