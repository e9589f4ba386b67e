import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { Providers } from './context.ts';
import type { TenantScope } from './server.ts';

/**
 * Express middleware serving the MCP endpoint and its protected resource metadata. Mount it
 * before any body parser, or after `express.json()` (a parsed body is used as is). Before is
 * better: then the token is verified before the body is read, and an oversize body is refused
 * (413) and audited in the caller's stream; a parser in front refuses it before anyone is known.
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
