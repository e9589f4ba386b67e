/**
 * Per-tenant documents in the example: `search_docs` and `add_doc` over `@tenantscope/qdrant`,
 * plugged in as `ctx.vectors`. All tenants share one collection; the scoped client adds the tenant
 * condition to every read and forces the tenant payload on every write.
 *
 * Embeddings are deterministic toy vectors (feature hashing of words, no model download), good
 * enough to rank documents that share words with the query.
 *
 * Qdrant: `QDRANT_URL` (+ `QDRANT_API_KEY`) when set; else the testkit's QdrantProtocolDouble on
 * loopback (a strict test double of the Qdrant REST API, not Qdrant), so the demo runs with
 * nothing installed.
 */
import { createHash, randomUUID } from 'node:crypto';
import { defineTool } from '@tenantscope/core';
import { QdrantClient, scopedQdrant, type TenantQdrant } from '@tenantscope/qdrant';
import { createTestIssuer, QdrantProtocolDouble } from '@tenantscope/testkit';
import { z } from 'zod';
import type { CrmPlugin, DemoContext } from '../plugin.ts';

/** Dimensions of the toy embedding. */
export const EMBED_DIM = 64;

/** Deterministic toy embedding: each lowercase word hashed to three signed buckets, then normalised. */
export function embed(text: string): number[] {
  const v = new Array<number>(EMBED_DIM).fill(0);
  for (const word of text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []) {
    // three signed buckets per word, so two words rarely cancel each other out
    const h = createHash('sha256').update(word).digest();
    for (let k = 0; k < 3; k++) v[h.readUInt16BE(3 * k) % EMBED_DIM]! += h[3 * k + 2]! & 1 ? 1 : -1;
  }
  const n = Math.hypot(...v);
  return n === 0 ? v.map((_, i) => (i === 0 ? 1 : 0)) : v.map((x) => x / n);
}

/** Documents each example tenant starts with. */
export const SEED_DOCS: Record<string, { title: string; body: string }[]> = {
  acme: [
    { title: 'Renewal playbook', body: 'How acme renews enterprise contracts with Initrode every year.' },
    { title: 'Support hours', body: 'acme support answers tickets from 8 to 18 on weekdays.' },
  ],
  globex: [
    { title: 'Merger plan', body: 'GLOBEX CONFIDENTIAL: acquire Hooli in Q1, announce the merger in March.' },
    { title: 'Support hours', body: 'globex support answers tickets around the clock.' },
  ],
  initech: [{ title: 'TPS reports', body: 'Every TPS report needs the new cover sheet.' }],
};

const tool = defineTool<{ vectors: TenantQdrant }>();

export const docTools = [
  tool({
    name: 'search_docs',
    description: "Semantic search over the calling tenant's documents.",
    input: {
      query: z.string().min(1).max(1000),
      limit: z.number().int().min(1).max(20).optional(),
    },
    annotations: { readOnlyHint: true },
    handler: async ({ query, limit }, ctx) => {
      const r = await ctx.vectors.query({
        query: embed(query),
        limit: limit ?? 5,
        with_payload: ['title', 'body'],
      });
      return {
        results: r.points.map((p) => ({
          id: p.id,
          title: p.payload?.title,
          body: p.payload?.body,
          score: Math.round(p.score * 1000) / 1000,
        })),
      };
    },
  }),
  tool({
    name: 'add_doc',
    description: "Adds a document to the calling tenant's searchable documents.",
    input: { title: z.string().min(1).max(200), body: z.string().min(1).max(10_000) },
    handler: async ({ title, body }, ctx) => {
      const id = randomUUID();
      await ctx.vectors.upsert({ points: [{ id, vector: embed(`${title} ${body}`), payload: { title, body } }] });
      return { id, title };
    },
  }),
];

async function demo({ call, check, say }: DemoContext, where: string): Promise<void> {
  say(`\n  Documents (@tenantscope/qdrant on ${where}): one shared collection, a tenant filter on every read`);
  const acme = await call('acme', 'search_docs', { query: 'merger plan Hooli acquisition', limit: 10 });
  say(`  acme search_docs "merger plan Hooli acquisition" -> ${acme.text}`);
  const acmeTitles = (JSON.parse(acme.text).results as { title: string; body: string }[]).map((r) => r.body);
  check(
    "acme's search returns only acme's documents",
    !acme.isError && acmeTitles.length === SEED_DOCS.acme!.length && acmeTitles.every((b) => !b.includes('globex')),
  );
  check("acme's search never shows globex's merger plan", !acme.text.includes('GLOBEX CONFIDENTIAL'));
  const globex = await call('globex', 'search_docs', { query: 'merger plan Hooli acquisition', limit: 1 });
  say(`  globex search_docs (same query) -> ${globex.text}`);
  check('globex finds its own merger plan', !globex.isError && globex.text.includes('GLOBEX CONFIDENTIAL'));

  const added = await call('acme', 'add_doc', { title: 'Demo note', body: 'quarterly kiwi inventory for acme' });
  check('acme adds a document', !added.isError);
  const mine = await call('acme', 'search_docs', { query: 'kiwi inventory', limit: 1 });
  check('acme finds the document it added', mine.text.includes('kiwi inventory'));
  const theirs = await call('globex', 'search_docs', { query: 'kiwi inventory', limit: 10 });
  check("globex does not find acme's new document", !theirs.isError && !theirs.text.includes('kiwi'));
  let spoofRefused: boolean;
  try {
    spoofRefused = (await call('acme', 'add_doc', { title: 'x', body: 'spoof', tenant_id: 'globex' })).isError;
  } catch {
    spoofRefused = true;
  }
  const afterSpoof = await call('globex', 'search_docs', { query: 'spoof', limit: 10 });
  check(
    'acme cannot add a document for globex by naming it in the arguments',
    spoofRefused && !afterSpoof.text.includes('spoof'),
  );
  const initech = await call('initech', 'add_doc', { title: 'x', body: 'y' });
  check('initech (search only) cannot call add_doc', initech.isError);
}

export const plugin: CrmPlugin = {
  name: 'qdrant',
  order: 50,
  async start(env) {
    const double = env.QDRANT_URL ? undefined : await QdrantProtocolDouble.start();
    const url = env.QDRANT_URL ?? double!.url;
    const where = double
      ? `the QdrantProtocolDouble (a test double, not Qdrant) at ${url}`
      : `Qdrant at ${new URL(url).host}`;
    const client = new QdrantClient({ url, apiKey: env.QDRANT_API_KEY || undefined, checkCompatibility: false });
    const collection = `crm_docs_${randomUUID().slice(0, 8)}`;
    await client.createCollection(collection, { vectors: { size: EMBED_DIM, distance: 'Cosine' } });
    const vectors = scopedQdrant(client, { collection, tenantField: 'tenant_id' });
    await vectors.ensureTenantIndex();
    // Seed through the scoped client, with tenants minted by a local dev issuer.
    const issuer = await createTestIssuer();
    for (const [tenantId, docs] of Object.entries(SEED_DOCS)) {
      const scoped = vectors.forTenant(await issuer.tenant(tenantId));
      await scoped.upsert({
        points: docs.map((d) => ({ id: randomUUID(), vector: embed(`${d.title} ${d.body}`), payload: d })),
      });
    }
    return {
      providers: { vectors: vectors.provider() },
      tools: docTools,
      demo: (ctx) => demo(ctx, where),
      async stop() {
        await client.deleteCollection(collection).catch(() => undefined);
        await double?.close();
      },
    };
  },
};
