// The control socket's wire format between tandemadm and tandemd: one JSON
// object per line each way. Requests carry an id that the response echoes.
// Pure: no I/O. Lines are bounded and every field is checked.

export const controlLineBytesMax = 1024 * 1024;

export const controlCommands = [
  'ping',
  'status',
  'up',
  'down',
  'attach',
  'detach',
  'primary',
  'secondary',
  'connect',
  'disconnect',
  'invalidate',
  'invalidate-remote',
  'verify',
  'events',
  'outdate',
  'resume-io',
] as const;
export type ControlCommand = (typeof controlCommands)[number];

export interface ControlRequest {
  readonly id: number;
  readonly cmd: ControlCommand;
  /** A resource name, or 'all'. */
  readonly resource: string;
  readonly force: boolean;
  /** connect: volunteer as the split brain's victim (`--discard-my-data`). */
  readonly discardMyData?: boolean;
}

export type ControlErrorCode =
  /** DRBD's "State change failed" family: the request is refused in this state. */
  'STATE_CHANGE_FAILED' | 'UNKNOWN_RESOURCE' | 'BAD_REQUEST' | 'IO_ERROR' | 'INTERNAL';

export interface ControlError {
  readonly code: ControlErrorCode;
  readonly message: string;
}

export type ControlResponse =
  | { readonly id: number; readonly ok: true; readonly result: unknown }
  | { readonly id: number; readonly ok: false; readonly error: ControlError };

export class ControlProtocolError extends Error {
  readonly code = 'CONTROL_PROTOCOL';
}

export function encodeRequest(r: ControlRequest): string {
  return `${JSON.stringify(r)}\n`;
}

export function encodeResponse(r: ControlResponse): string {
  return `${JSON.stringify(r)}\n`;
}

function parseObject(line: string): Record<string, unknown> {
  if (line.length > controlLineBytesMax)
    throw new ControlProtocolError(`line longer than ${controlLineBytesMax} bytes`);
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch (e) {
    throw new ControlProtocolError(`not JSON: ${(e as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new ControlProtocolError('not a JSON object');
  return v as Record<string, unknown>;
}

export function decodeRequest(line: string): ControlRequest {
  const o = parseObject(line);
  const { id, cmd, resource, force } = o;
  if (typeof id !== 'number' || !Number.isSafeInteger(id))
    throw new ControlProtocolError("'id' must be an integer");
  if (typeof cmd !== 'string' || !(controlCommands as readonly string[]).includes(cmd)) {
    throw new ControlProtocolError(`unknown command ${JSON.stringify(cmd)}`);
  }
  if (typeof resource !== 'string' || resource.length === 0 || resource.length > 256) {
    throw new ControlProtocolError("'resource' must be a name or 'all'");
  }
  if (force !== undefined && typeof force !== 'boolean')
    throw new ControlProtocolError("'force' must be a boolean");
  const discard = o['discardMyData'];
  if (discard !== undefined && typeof discard !== 'boolean')
    throw new ControlProtocolError("'discardMyData' must be a boolean");
  return {
    id,
    cmd: cmd as ControlCommand,
    resource,
    force: force === true,
    ...(discard === true ? { discardMyData: true } : {}),
  };
}

export function decodeResponse(line: string): ControlResponse {
  const o = parseObject(line);
  if (typeof o['id'] !== 'number') throw new ControlProtocolError("'id' must be a number");
  if (o['ok'] === true) return { id: o['id'], ok: true, result: o['result'] };
  const e = o['error'] as Record<string, unknown> | undefined;
  if (o['ok'] !== false || typeof e !== 'object' || e === null || typeof e['message'] !== 'string') {
    throw new ControlProtocolError('malformed response');
  }
  return { id: o['id'], ok: false, error: { code: e['code'] as ControlErrorCode, message: e['message'] } };
}

/** Splits a byte stream into lines, bounded; returns complete lines and keeps the rest. */
export class LineSplitter {
  private rest = '';
  push(chunk: string): string[] {
    this.rest += chunk;
    if (this.rest.length > controlLineBytesMax && !this.rest.includes('\n')) {
      throw new ControlProtocolError(`line longer than ${controlLineBytesMax} bytes`);
    }
    const lines = this.rest.split('\n');
    this.rest = lines.pop() ?? '';
    return lines.filter((l) => l.length > 0);
  }
}
