import type { CallToolResult, ToolAnnotations } from '@modelcontextprotocol/sdk/types.js';
import type { z } from 'zod';
import type { ToolContext } from './context.ts';
import { TenantScopeError } from './errors.ts';
import { checkResultCap } from './result-limit.ts';

/** A tool result: an MCP CallToolResult, or any JSON value (sent as JSON text). */
export type ToolResult = CallToolResult | Record<string, unknown> | unknown[] | string | number | boolean | null;

export interface ToolDefinition<S extends z.ZodRawShape = z.ZodRawShape, R = Record<never, never>> {
  /** Tool name: letters, digits, `_`, `-`, `.`; 1–64 characters. */
  name: string;
  /** Human-readable title. */
  title?: string;
  /** What the tool does, for the model. */
  description: string;
  /** Input shape (zod). Arguments are validated against it before the handler runs. */
  input?: S;
  /** MCP tool annotations (readOnlyHint, …). */
  annotations?: ToolAnnotations;
  /**
   * Largest result this tool may send, in bytes of serialised JSON. Default: the server's
   * `limits.maxResultBytes` (1 MiB). A larger result is replaced by a `RESULT_TOO_LARGE` error.
   */
  maxResultBytes?: number;
  /** Secret names this tool may read through `ctx.secrets`; anything else is refused. */
  secrets?: readonly string[];
  /** The handler. It gets validated arguments and a tenant-bound context; it never takes a tenant id. */
  handler: (args: z.infer<z.ZodObject<S>>, ctx: ToolContext<R>) => ToolResult | Promise<ToolResult>;
}

/**
 * An error a tool throws to give the client its own code and message. A handler needs no
 * try/catch around adapters: every `TenantScopeError` (`ToolError` and the adapters' typed errors
 * alike) reaches the client as `CODE: message` with `_meta.code`; any other error is reported as
 * `INTERNAL` with no message.
 */
export class ToolError extends TenantScopeError {
  constructor(message: string, options: { code?: string; cause?: unknown } = {}) {
    super(options.code ?? 'TOOL_ERROR', message, { cause: options.cause });
  }
}

const TOOL_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

/** Validates a definition. Throws INVALID_CONFIG on a bad name or a missing handler. */
export function validateToolDefinition(def: ToolDefinition<z.ZodRawShape, unknown>): void {
  if (!def || typeof def !== 'object')
    throw new TenantScopeError('INVALID_CONFIG', 'tool definition must be an object');
  if (typeof def.name !== 'string' || !TOOL_NAME.test(def.name)) {
    throw new TenantScopeError('INVALID_CONFIG', `invalid tool name ${JSON.stringify(def.name)}`);
  }
  if (typeof def.description !== 'string' || def.description.length === 0) {
    throw new TenantScopeError('INVALID_CONFIG', `tool ${def.name} needs a description`);
  }
  if (typeof def.handler !== 'function')
    throw new TenantScopeError('INVALID_CONFIG', `tool ${def.name} needs a handler`);
  if (def.maxResultBytes !== undefined) checkResultCap(def.maxResultBytes, `tool ${def.name}`);
  if (def.secrets !== undefined && (!Array.isArray(def.secrets) || !def.secrets.every((s) => typeof s === 'string'))) {
    throw new TenantScopeError('INVALID_CONFIG', `tool ${def.name}: secrets must be a list of names`);
  }
}

/** Turns a handler's return value into a CallToolResult. */
export function toCallToolResult(value: ToolResult): CallToolResult {
  if (isCallToolResult(value)) return value;
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  const result: CallToolResult = { content: [{ type: 'text', text }] };
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    result.structuredContent = value as Record<string, unknown>;
  }
  return result;
}

function isCallToolResult(value: unknown): value is CallToolResult {
  return (
    typeof value === 'object' &&
    value !== null &&
    Array.isArray((value as { content?: unknown }).content) &&
    Object.keys(value).every((k) => ['content', 'structuredContent', 'isError', '_meta'].includes(k))
  );
}

/**
 * Identity helper that infers the argument types from `input`, for tools defined outside a
 * `scope.tool(...)` call. `R` is the resources the tool expects on `ctx` (e.g. `{ db: ScopedDb }`).
 */
export function defineTool<R = Record<never, never>>() {
  return <S extends z.ZodRawShape>(def: ToolDefinition<S, R>): ToolDefinition<S, R> => def;
}
