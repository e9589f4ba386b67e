import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';

/**
 * Reports every response the transport failed to deliver: the client went away before it (the
 * SDK's send rejects), or it could not be written (the SDK reports that through `onerror` and
 * carries on, leaving a 200 event stream with no message). `onUndelivered` gets the request id,
 * so the audit trail can record that the client did not get the outcome already audited.
 */
export function watchDelivery(
  transport: Transport,
  onUndelivered: (requestId: string | number, error: unknown) => void,
): void {
  const send = transport.send.bind(transport);
  transport.send = async (message, options) => {
    const id = responseId(message);
    if (id === undefined) return send(message, options);
    let failed: unknown;
    const previous = transport.onerror;
    // The SDK writes an event synchronously inside send (no event store here), so an error it
    // reports while this call runs belongs to this response.
    transport.onerror = (e) => {
      failed ??= e;
      previous?.(e);
    };
    let pending: Promise<void>;
    try {
      pending = send(message, options);
    } finally {
      transport.onerror = previous;
    }
    try {
      await pending;
    } catch (e) {
      failed ??= e;
      throw e;
    } finally {
      if (failed !== undefined) onUndelivered(id, failed);
    }
  };
}

function responseId(message: unknown): string | number | undefined {
  if (typeof message !== 'object' || message === null) return undefined;
  const m = message as { id?: unknown; result?: unknown; error?: unknown };
  if (!('result' in m) && !('error' in m)) return undefined;
  return typeof m.id === 'string' || typeof m.id === 'number' ? m.id : undefined;
}
