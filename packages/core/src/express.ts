import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { Providers } from './context.ts';
import type { TenantScope } from './server.ts';

/**
 * Express middleware serving the MCP endpoint and its protected resource metadata. Mount it
 * before any body parser, or after `express.json()` (a parsed body is used as is).
 *
 * ```ts
 * app.use(expressHandler(scope));
 * ```
 */
export function expressHandler<P extends Providers>(scope: TenantScope<P>): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    const path = req.path;
    if (path !== scope.mcpPath && path !== scope.metadataPath) return next();
    const body = (req as { body?: unknown }).body;
    scope
      .handle(
        req,
        res,
        body !== undefined && typeof body === 'object' && Object.keys(body ?? {}).length > 0 ? body : undefined,
      )
      .catch(next);
  };
}
