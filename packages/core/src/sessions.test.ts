import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  bindStateless,
  type Session,
  SessionStore,
  statelessBinding,
  statelessSession,
  unbindStateless,
} from './sessions.ts';
import type { Tenant } from './tenant.ts';
import { testTenants } from './test-helpers.ts';

let acme: Tenant;
let globex: Tenant;
beforeAll(async () => {
  const tenants = await testTenants();
  acme = await tenants.tenant('acme');
  globex = await tenants.tenant('globex');
});

const TOOLS = new Set(['search']);
const build = () => new McpServer({ name: 't', version: '0' });
let store: SessionStore;
afterEach(() => store?.closeAll());

function newStore(maxSessions = 100, idleTimeoutMs = 60_000) {
  store = new SessionStore({ maxSessions, idleTimeoutMs, onUndelivered: () => undefined });
  return store;
}

describe('SessionStore', () => {
  it('opens a session bound to the tenant and subject, with a 256-bit id', async () => {
    const s = await newStore().open(acme, TOOLS, 4, build);
    expect(s).toMatchObject({ tenantId: 'acme', subject: 'agent-1', registered: TOOLS });
    expect(s.id).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(store.get(s.id)).toBe(s);
    expect(store.size).toBe(1);
  });

  it('past the tenant cap, closes that tenant’s least recently used session, never another tenant’s', async () => {
    newStore();
    const a1 = await store.open(acme, TOOLS, 2, build);
    const a2 = await store.open(acme, TOOLS, 2, build);
    const g1 = await store.open(globex, TOOLS, 2, build);
    store.touch(a1); // a2 is now acme's least recently used
    const a3 = await store.open(acme, TOOLS, 2, build);
    expect(store.get(a2.id)).toBeUndefined();
    expect([a1, a3, g1].map((s) => store.get(s.id))).toEqual([a1, a3, g1]);
    expect(store.countOf('acme')).toBe(2);
    expect(store.countOf('globex')).toBe(1);
  });

  it('refuses a new session past the server cap (SESSION_LIMIT) and changes nothing', async () => {
    newStore(2);
    const a = await store.open(acme, TOOLS, 4, build);
    const g = await store.open(globex, TOOLS, 4, build);
    await expect(store.open(acme, TOOLS, 4, build)).rejects.toMatchObject({ code: 'SESSION_LIMIT', status: 503 });
    expect(store.size).toBe(2);
    expect([store.get(a.id), store.get(g.id)]).toEqual([a, g]);
  });

  it('sweeps sessions idle past the timeout and keeps the others', async () => {
    newStore(100, 10_000);
    const idle = await store.open(acme, TOOLS, 4, build);
    const busy = await store.open(acme, TOOLS, 4, build);
    idle.lastSeen = Date.now() - 20_000;
    store.sweep();
    expect(store.get(idle.id)).toBeUndefined();
    expect(store.get(busy.id)).toBe(busy);
    expect(store.countOf('acme')).toBe(1);
  });

  it('forgets a session when it is closed, or when its transport closes', async () => {
    newStore();
    const a = await store.open(acme, TOOLS, 4, build);
    const b = await store.open(acme, TOOLS, 4, build);
    await store.close(a);
    await b.transport.close();
    expect(store.size).toBe(0);
    expect(store.countOf('acme')).toBe(0);
  });
});

describe('stateless bindings', () => {
  it('finds the session only through a principal the server bound, and only while bound', () => {
    const session: Session = statelessSession(acme, build(), TOOLS);
    expect(session.id).not.toBe(statelessSession(acme, build(), TOOLS).id);
    const principal = { tenant: acme, ip: null, session };
    expect(() => statelessBinding({ authInfo: { extra: principal } })).toThrow(
      expect.objectContaining({ code: 'NO_TENANT_CONTEXT' }),
    );
    bindStateless(principal);
    expect(statelessBinding({ authInfo: { extra: principal } })).toBe(session);
    // A look-alike object (e.g. built from client input) is not a binding.
    expect(() => statelessBinding({ authInfo: { extra: { ...principal } } })).toThrow(
      expect.objectContaining({ code: 'NO_TENANT_CONTEXT' }),
    );
    unbindStateless(principal);
    expect(() => statelessBinding({ authInfo: { extra: principal } })).toThrow(
      expect.objectContaining({ code: 'NO_TENANT_CONTEXT' }),
    );
    expect(() => statelessBinding({})).toThrow(expect.objectContaining({ code: 'NO_TENANT_CONTEXT' }));
  });
});
