import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { ResourceProvider, ToolDefinition } from '@tenantscope/core';

/** Tenants the example seeds and the demo uses. */
export const EXAMPLE_TENANTS = ['acme', 'globex', 'initech'] as const;

// biome-ignore lint/suspicious/noExplicitAny: each plugin types its own ctx; the server composes them.
export type AnyToolDefinition = ToolDefinition<any, any>;

/** What the demo hands a plugin: one connected MCP client per tenant, and a way to record checks. */
export interface DemoContext {
  clients: Record<(typeof EXAMPLE_TENANTS)[number], Client>;
  /** Records an isolation check; the demo exits non-zero if any fails. */
  check(label: string, ok: boolean, detail?: string): void;
  /** Prints a line of demo narration. */
  say(line: string): void;
  /** Calls a tool and returns its text and error flag. */
  call(
    tenant: (typeof EXAMPLE_TENANTS)[number],
    tool: string,
    args?: Record<string, unknown>,
  ): Promise<{ text: string; isError: boolean }>;
}

export interface StartedPlugin {
  /** Providers this plugin plugs into ctx (e.g. `{ db: ... }`). */
  providers?: Record<string, ResourceProvider<unknown>>;
  /** Tools this plugin adds. */
  tools: AnyToolDefinition[];
  /** A scripted part of the demo showing this plugin's isolation. */
  demo?(ctx: DemoContext): Promise<void>;
  /** Stops what `start` started. */
  stop(): Promise<void>;
}

/**
 * A store-backed part of the example server. Each file in `src/plugins/` exports one as
 * `plugin`; the server loads them all, so adapters never edit a shared file to add theirs.
 */
export interface CrmPlugin {
  name: string;
  /** Lower runs first. Default 100. */
  order?: number;
  start(env: NodeJS.ProcessEnv): Promise<StartedPlugin>;
}
