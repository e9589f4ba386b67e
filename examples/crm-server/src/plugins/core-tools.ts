import { ToolError, defineTool } from '@tenantscope/core';
import { z } from 'zod';
import type { CrmPlugin } from '../plugin.ts';

const tool = defineTool();

/** Tools that need no store: `whoami` (every tenant) and two that only some tenants have. */
export const plugin: CrmPlugin = {
  name: 'core-tools',
  order: 0,
  async start() {
    return {
      tools: [
        tool({
          name: 'whoami',
          description: 'Returns the tenant and subject this session is bound to.',
          annotations: { readOnlyHint: true },
          handler: (_args, ctx) => ({ tenant_id: ctx.tenant.id, subject: ctx.subject, session_id: ctx.sessionId }),
        }),
        tool({
          name: 'company_report',
          description: 'A report only acme is licensed for.',
          input: { quarter: z.string().regex(/^Q[1-4]$/) },
          annotations: { readOnlyHint: true },
          handler: ({ quarter }, ctx) => ({ tenant_id: ctx.tenant.id, quarter, revenue: 1_000_000 }),
        }),
        tool({
          name: 'forecast',
          description: 'A forecast only globex is licensed for.',
          input: { months: z.number().int().min(1).max(24) },
          annotations: { readOnlyHint: true },
          handler: ({ months }, ctx) => {
            if (months > 12) throw new ToolError('forecasts are limited to 12 months', { code: 'FORECAST_RANGE' });
            return { tenant_id: ctx.tenant.id, months, growth: 0.04 };
          },
        }),
      ],
      async stop() {},
    };
  },
};
