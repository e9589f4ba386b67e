import { z } from 'zod';
import { TenantScopeError } from './errors.ts';

const schemas = new WeakMap<object, z.ZodType>();

/**
 * Checks a tools/call's arguments against the tool's input shape, as the SDK would, but before the
 * SDK sees the request, so the refusal can be audited in the caller's stream (the SDK rejects such
 * a call before any tool code runs). Returns an `INVALID_ARGUMENT` error, or undefined when valid.
 * The message lists zod's issues (paths and expectations of the caller's own input), truncated.
 */
export function checkArguments(
  def: { name: string; input?: z.ZodRawShape },
  args: unknown,
): TenantScopeError | undefined {
  if (!def.input) return undefined;
  let schema = schemas.get(def);
  if (!schema) {
    schema = z.object(def.input);
    schemas.set(def, schema);
  }
  const parsed = schema.safeParse(args ?? {});
  if (parsed.success) return undefined;
  const issues = parsed.error.issues
    .slice(0, 10)
    .map((i) => `${i.path.length ? i.path.map(String).join('.') : '(arguments)'}: ${i.message}`)
    .join('; ');
  return new TenantScopeError('INVALID_ARGUMENT', `invalid arguments for tool ${def.name}: ${issues}`.slice(0, 1000));
}
