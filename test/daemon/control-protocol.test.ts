// The control socket's codec (tandemadm <-> tandemd): round trips, refusals, and fuzzing
// of the decoders and the line splitter with mutated real requests and responses.
// Invariant: a typed result or a ControlProtocolError, never another exception; lines
// stay bounded.
import assert from 'node:assert/strict';
import test from 'node:test';
import fc from 'fast-check';
import {
  ControlProtocolError,
  type ControlRequest,
  type ControlResponse,
  controlCommands,
  controlLineBytesMax,
  decodeRequest,
  decodeResponse,
  encodeRequest,
  encodeResponse,
  LineSplitter,
} from '../../src/daemon/control-protocol.js';
import { mutate, mutationArb } from '../helpers/byte-mutate.js';

const seed = 20261206;

/** Requests as tandemadm sends them, and responses as tandemd answers them: the corpus. */
const requests: ControlRequest[] = [
  { id: 1, cmd: 'status', resource: 'r0', force: false },
  { id: 2, cmd: 'primary', resource: 'r0', force: true },
  { id: 3, cmd: 'connect', resource: 'all', force: false, discardMyData: true },
  { id: 4, cmd: 'events', resource: 'all', force: false },
];
const responses: ControlResponse[] = [
  {
    id: 1,
    ok: true,
    result: { resources: [{ name: 'r0', role: 'Primary', volumes: [{ disk: 'UpToDate' }] }] },
  },
  {
    id: 2,
    ok: false,
    error: { code: 'STATE_CHANGE_FAILED', message: 'State change failed: (-2) Need access to UpToDate data' },
  },
  { id: 3, ok: true, result: null },
];

const requestArb: fc.Arbitrary<ControlRequest> = fc
  .record({
    id: fc.integer({ min: 0, max: 2 ** 31 }),
    cmd: fc.constantFrom(...controlCommands),
    resource: fc.string({ minLength: 1, maxLength: 40 }),
    force: fc.boolean(),
    discardMyData: fc.boolean(),
  })
  .map(({ discardMyData, ...r }) => (discardMyData ? { ...r, discardMyData: true } : r));

function typedOrProtocolError<T>(f: () => T): T | undefined {
  try {
    return f();
  } catch (e) {
    if (!(e instanceof ControlProtocolError)) throw e;
    assert.ok(e.message.length > 0);
    return undefined;
  }
}

test('requests and responses survive a round trip', () => {
  fc.assert(
    fc.property(requestArb, (r) => {
      const line = encodeRequest(r);
      assert.ok(line.endsWith('\n') && !line.slice(0, -1).includes('\n'), 'one line');
      assert.deepEqual(decodeRequest(line.slice(0, -1)), r);
    }),
    { seed, numRuns: 500 },
  );
  for (const r of responses) assert.deepEqual(decodeResponse(encodeResponse(r).slice(0, -1)), r);
});

test('refusals name what is wrong', () => {
  const cases: [string, RegExp][] = [
    ['', /not JSON/],
    ['[1,2]', /not a JSON object/],
    ['null', /not a JSON object/],
    ['{"id":1.5,"cmd":"status","resource":"r0"}', /'id' must be an integer/],
    ['{"id":1,"cmd":"format-disk","resource":"r0"}', /unknown command "format-disk"/],
    ['{"id":1,"cmd":"status","resource":""}', /'resource' must be a name/],
    [`{"id":1,"cmd":"status","resource":"${'x'.repeat(257)}"}`, /'resource' must be a name/],
    ['{"id":1,"cmd":"status","resource":"r0","force":"yes"}', /'force' must be a boolean/],
    ['{"id":1,"cmd":"connect","resource":"r0","discardMyData":1}', /'discardMyData' must be a boolean/],
  ];
  for (const [line, why] of cases) assert.throws(() => decodeRequest(line), why, line);
  assert.throws(() => decodeResponse('{"id":1,"ok":false}'), /malformed response/);
  assert.throws(() => decodeResponse('{"ok":true}'), /'id' must be a number/);
});

test('mutated requests and responses decode to a typed value or a ControlProtocolError', () => {
  const corpus = [...requests.map(encodeRequest), ...responses.map(encodeResponse)].map((l) =>
    Buffer.from(l.slice(0, -1)),
  );
  fc.assert(
    fc.property(
      fc.constantFrom(...corpus),
      fc.array(mutationArb, { minLength: 1, maxLength: 6 }),
      (original, mutations) => {
        const line = mutate(original, mutations).toString('utf8');
        const req = typedOrProtocolError(() => decodeRequest(line));
        if (req) {
          assert.ok((controlCommands as readonly string[]).includes(req.cmd));
          assert.ok(Number.isSafeInteger(req.id));
          assert.equal(typeof req.force, 'boolean');
        }
        const res = typedOrProtocolError(() => decodeResponse(line));
        if (res && !res.ok) assert.equal(typeof res.error.message, 'string');
      },
    ),
    { seed, numRuns: 3000 },
  );
});

test('arbitrary text never escapes the decoders as another exception', () => {
  fc.assert(
    fc.property(fc.oneof(fc.string({ maxLength: 300 }), fc.json({ maxDepth: 3 })), (line) => {
      typedOrProtocolError(() => decodeRequest(line));
      typedOrProtocolError(() => decodeResponse(line));
    }),
    { seed, numRuns: 3000 },
  );
});

test('the line splitter gives the lines whatever the chunking, and bounds a line without end', () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.string({ maxLength: 30 }).map((s) => s.replaceAll('\n', '')),
        { maxLength: 12 },
      ),
      fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 20 }),
      (lines, cuts) => {
        const text = lines.map((l) => `${l}\n`).join('');
        const splitter = new LineSplitter();
        const got: string[] = [];
        let at = 0;
        for (let i = 0; at < text.length; i++) {
          const n = cuts[i % cuts.length]!;
          got.push(...splitter.push(text.slice(at, at + n)));
          at += n;
        }
        assert.deepEqual(
          got,
          lines.filter((l) => l.length > 0),
        );
      },
    ),
    { seed, numRuns: 500 },
  );
  const s = new LineSplitter();
  const chunk = 'x'.repeat(64 * 1024);
  assert.throws(() => {
    for (let sent = 0; sent <= controlLineBytesMax; sent += chunk.length) s.push(chunk);
  }, /line longer than/);
});
