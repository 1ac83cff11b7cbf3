/**
 * A small JSON Schema validator for the subset schema/rootforge.schema.json uses (type, enum,
 * pattern, min/max, properties, required, additionalProperties, propertyNames, items, oneOf, anyOf).
 * The schema file is the one source of truth: editors complete from it and builds validate
 * against it. Errors name the key: "spec.users[1].uid".
 */

export type Schema = {
  type?: string | string[];
  enum?: unknown[];
  pattern?: string;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  maxItems?: number;
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean | Schema;
  propertyNames?: Schema;
  items?: Schema;
  oneOf?: Schema[];
  anyOf?: Schema[];
  description?: string;
};

export interface SchemaError {
  path: string;
  message: string;
  value: unknown;
}

export function validate(value: unknown, schema: Schema, path = 'spec'): SchemaError[] {
  const errors: SchemaError[] = [];
  const err = (message: string) => errors.push({ path, message, value });
  // oneOf is checked as anyOf: the schema's alternatives never overlap where oneOf is used.
  const alternatives = schema.oneOf ?? schema.anyOf;
  if (alternatives) {
    if (alternatives.some((s) => validate(value, s, path).length === 0)) return errors;
    // An object matching the one object alternative: its own errors are the precise ones
    // ("spec.repositories[0].uri is required").
    const isObject = typeof value === 'object' && value !== null && !Array.isArray(value);
    const sameType = !isObject ? [] : alternatives.filter((s) => s.type === undefined || (Array.isArray(s.type) ? s.type : [s.type]).some((t) => isType(value, t)));
    if (sameType.length === 1) return validate(value, sameType[0]!, path);
    err(`must be ${alternatives.map(describe).join(' or ')}`);
    return errors;
  }
  if (schema.enum && !schema.enum.some((e) => e === value)) {
    err(`must be one of ${schema.enum.map((e) => JSON.stringify(e)).join(', ')}`);
    return errors;
  }
  if (schema.type !== undefined) {
    const types = Array.isArray(schema.type) ? schema.type : [schema.type];
    if (!types.some((t) => isType(value, t))) {
      err(`must be ${types.map((t) => (t === 'integer' ? 'a whole number' : `a${/^[aeiou]/.test(t) ? 'n' : ''} ${t}`)).join(' or ')}`);
      return errors;
    }
  }
  if (typeof value === 'string') {
    if (schema.minLength !== undefined && value.length < schema.minLength) err(`must not be empty`);
    if (schema.maxLength !== undefined && value.length > schema.maxLength) err(`must be at most ${schema.maxLength} characters`);
    if (schema.pattern !== undefined && !new RegExp(schema.pattern, 'u').test(value)) err(`has the wrong form (expected ${schema.pattern})`);
  }
  if (typeof value === 'number') {
    if (schema.minimum !== undefined && value < schema.minimum) err(`must be at least ${schema.minimum}`);
    if (schema.maximum !== undefined && value > schema.maximum) err(`must be at most ${schema.maximum}`);
  }
  if (Array.isArray(value)) {
    if (schema.maxItems !== undefined && value.length > schema.maxItems) err(`must have at most ${schema.maxItems} items`);
    if (schema.items) value.forEach((v, i) => errors.push(...validate(v, schema.items!, `${path}[${i}]`)));
  } else if (value !== null && typeof value === 'object') {
    const obj = value as Record<string, unknown>;
    for (const r of schema.required ?? []) if (!(r in obj)) errors.push({ path: `${path}.${r}`, message: 'is required', value: undefined });
    for (const [k, v] of Object.entries(obj)) {
      const sub = schema.properties?.[k];
      const at = `${path}.${k}`;
      if (schema.propertyNames) {
        const bad = validate(k, schema.propertyNames, at);
        if (bad.length > 0) errors.push({ path: at, message: 'is not a valid name', value: k });
      }
      if (sub) errors.push(...validate(v, sub, at));
      else if (schema.additionalProperties === false) errors.push({ path: at, message: 'is not a known key', value: k });
      else if (typeof schema.additionalProperties === 'object') errors.push(...validate(v, schema.additionalProperties, at));
    }
  }
  return errors;
}

function isType(v: unknown, t: string): boolean {
  switch (t) {
    case 'string':
      return typeof v === 'string';
    case 'number':
      return typeof v === 'number' && Number.isFinite(v);
    case 'integer':
      return typeof v === 'number' && Number.isInteger(v);
    case 'boolean':
      return typeof v === 'boolean';
    case 'array':
      return Array.isArray(v);
    case 'object':
      return v !== null && typeof v === 'object' && !Array.isArray(v);
    default:
      return false;
  }
}

function describe(s: Schema): string {
  if (s.description !== undefined && s.description.length <= 80) return s.description;
  if (s.type) return Array.isArray(s.type) ? s.type.join('/') : s.type === 'array' && s.items?.enum ? `a list of ${s.items.enum.join(', ')}` : `a ${s.type}`;
  if (s.enum) return s.enum.map((e) => JSON.stringify(e)).join('/');
  return 'valid';
}
