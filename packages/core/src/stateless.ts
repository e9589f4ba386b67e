import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { BoundedLru } from './lru.ts';

/**
 * Idle `McpServer`s for stateless mode, keyed by the tool set they were built with.
 *
 * In stateless mode every request gets a fresh SDK transport (the SDK refuses to reuse one), and
 * an `McpServer` serves one transport at a time. Building a server and registering a tenant's
 * tools on it for every request is the largest part of the binding's cost, so a server goes back
 * here after its request and the next request with the same tool set takes it again. A server
 * holds no tenant data: its tool handlers read the tenant from the request's verified principal.
 * A server that saw `initialize` (which stores the client's capabilities on it) is never pooled.
 *
 * Bounded: at most `maxIdlePerKey` idle servers per tool set and `maxKeys` tool sets.
 */
export class ServerPool {
  readonly #idle: BoundedLru<string, McpServer[]>;
  readonly #maxIdlePerKey: number;

  constructor(options: { maxKeys?: number; maxIdlePerKey?: number } = {}) {
    this.#idle = new BoundedLru(options.maxKeys ?? 256);
    this.#maxIdlePerKey = options.maxIdlePerKey ?? 64;
  }

  /** An idle server for this tool set, or one made by `build`. */
  take(key: string, build: () => McpServer): McpServer {
    return this.#idle.get(key)?.pop() ?? build();
  }

  /** Returns a closed (disconnected) server for reuse; dropped past the bound. */
  give(key: string, server: McpServer): void {
    let list = this.#idle.get(key);
    if (!list) {
      list = [];
      this.#idle.set(key, list);
    }
    if (list.length < this.#maxIdlePerKey) list.push(server);
  }

  /** Idle servers held (all tool sets). */
  get size(): number {
    let n = 0;
    for (const list of this.#idle.values()) n += list.length;
    return n;
  }

  clear(): void {
    for (const [key] of [...this.#idle.entries()]) this.#idle.delete(key);
  }
}

/** A stable key for a tool set. */
export function toolSetKey(tools: ReadonlySet<string>): string {
  return [...tools].sort().join('\u0000');
}
