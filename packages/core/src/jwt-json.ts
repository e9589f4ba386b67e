import { type AnyNode, parse } from '@humanwhocodes/momoa';
import { TenantScopeError } from './errors.ts';

/**
 * Refuses a compact JWS whose protected header or payload JSON has a member name twice in one
 * object, at any depth. `JSON.parse` (and so jose) keeps the last duplicate silently, so a signed
 * `{"tenant_id":"acme","tenant_id":"globex"}` would otherwise be read as globex. The check runs on
 * the raw decoded text through a JSON AST (member names compared after unescaping, so
 * `"tenant\u005fid"` is the same name as `"tenant_id"`), never on a parsed object.
 */
export function assertNoDuplicateMembers(token: string): void {
  const parts = token.split('.');
  if (parts.length !== 3) throw new TenantScopeError('AUTH_MALFORMED', 'token is not a compact JWS');
  for (const segment of parts.slice(0, 2)) {
    const text = Buffer.from(segment ?? '', 'base64url').toString('utf8');
    let root: AnyNode;
    try {
      root = parse(text);
    } catch (cause) {
      throw new TenantScopeError('AUTH_MALFORMED', 'token JSON is malformed', { cause });
    }
    if (hasDuplicateMember(root)) {
      throw new TenantScopeError('AUTH_DUPLICATE_CLAIM', 'token JSON has a duplicate member name');
    }
  }
}

/** True when any object in the tree names a member twice. Iterative, so depth cannot blow the stack. */
export function hasDuplicateMember(root: AnyNode): boolean {
  const stack: AnyNode[] = [root];
  while (stack.length > 0) {
    const node = stack.pop() as AnyNode;
    switch (node.type) {
      case 'Document':
        stack.push(node.body);
        break;
      case 'Object': {
        const seen = new Set<string>();
        for (const m of node.members) {
          const name = m.name.type === 'String' ? m.name.value : m.name.name;
          if (seen.has(name)) return true;
          seen.add(name);
          stack.push(m.value);
        }
        break;
      }
      case 'Array':
        for (const e of node.elements) stack.push(e.value);
        break;
      default:
        break;
    }
  }
  return false;
}
