// Checking inbound JSON messages against a registry of message types, each a set of field
// checkers. A failure names the message type and field, so every side can answer bad input with
// a reason the sender can act on.

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string; field?: string };

/** Returns null when the value is acceptable, or what is wrong with it ("must be …"). */
export type Check = (value: unknown) => string | null;
export type Shape = Record<string, Check>;

const MAX_STRING = 2048;

export function text({ min = 1, max = MAX_STRING, pattern, like }: { min?: number; max?: number; pattern?: RegExp; like?: string } = {}): Check {
  return (value) => {
    if (typeof value !== 'string' || value.length < min || value.length > max) {
      return min === max ? `must be a string of ${min} characters` : `must be a string of ${min} to ${max} characters`;
    }
    return pattern && !pattern.test(value) ? `must be ${like ?? `like ${pattern}`}` : null;
  };
}

export function number({ min = -Infinity, max = Infinity, integer = false }: { min?: number; max?: number; integer?: boolean } = {}): Check {
  const range = Number.isFinite(min) && Number.isFinite(max) ? ` from ${min} to ${max}` : Number.isFinite(min) ? ` >= ${min}` : '';
  const what = `${integer ? 'an integer' : 'a finite number'}${range}`;
  return (value) =>
    typeof value === 'number' && Number.isFinite(value) && value >= min && value <= max && (!integer || Number.isInteger(value))
      ? null
      : `must be ${what}`;
}

export function oneOf(...choices: readonly (string | boolean)[]): Check {
  return (value) => (choices.includes(value as string) ? null : `must be ${choices.map((c) => JSON.stringify(c)).join(' or ')}`);
}

export const boolean: Check = oneOf(true, false);

export function optional(check: Check): Check {
  return (value) => (value === undefined ? null : check(value));
}

/** Parses `text` as one of the registry's message types; unknown fields are dropped. */
export function parseWith<T>(registry: Record<string, Shape>, text: string): Parsed<T> {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    return { ok: false, error: 'message is not valid JSON' };
  }
  return checkVariant<T>(registry, data, 'type', 'message');
}

/** Each shape's fields, listed once: a message is checked against them many thousand times a second. */
const FIELDS = new WeakMap<Shape, [string, Check][]>();
function fieldsOf(shape: Shape): [string, Check][] {
  let fields = FIELDS.get(shape);
  if (!fields) FIELDS.set(shape, (fields = Object.entries(shape)));
  return fields;
}

/**
 * Checks `data` as one of the registry's variants, told apart by its `tag` field (`type` for a
 * message, `kind` for what one carries); unknown fields are dropped. `what` names it in errors.
 */
export function checkVariant<T>(registry: Record<string, Shape>, data: unknown, tag: string, what: string): Parsed<T> {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    return { ok: false, error: `${what} must be a JSON object` };
  }
  const record = data as Record<string, unknown>;
  const variant = record[tag];
  if (typeof variant !== 'string' || !Object.hasOwn(registry, variant)) {
    return { ok: false, field: tag, error: `${tag} must be one of ${Object.keys(registry).join(', ')}` };
  }
  const value: Record<string, unknown> = { [tag]: variant };
  for (const [field, check] of fieldsOf(registry[variant])) {
    const problem = check(record[field]);
    if (problem) return { ok: false, field, error: `${variant}.${field} ${problem}` };
    if (record[field] !== undefined) value[field] = record[field];
  }
  return { ok: true, value: value as T };
}
