// A reference for bench/two-nodes.ts: the least a replicator in Node can do per write
// on this machine. tandem's own NBD server, and behind it an export that writes each
// WRITE to its file (a buffered pwrite, as tandem does) and sends it over loopback TCP to
// a second process, which writes it to its file, acknowledges in batches (one ack frame
// per event-loop turn) and, like tandem's Secondary under protocol C, makes its file
// durable every 50 ms. The NBD reply waits for the ack. No metadata, no activity log, no
// ordering, no recovery: it is not a device anyone should use, only the floor under what
// protocol C costs here, measured in the same run as tandem. Both processes busy-poll as
// tandemd does by default (src/util/busy-poll.ts), so the QD1 row compares too.
// Run as a child: node dist/bench/node-floor.js --mode peer|primary --file F --port P [--socket S] [--flush-ms N]
import { spawn } from 'node:child_process';
import { fdatasync, openSync, writeSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { NbdServer } from '../src/nbd/server.js';
import { BusyPoll, busyPollUsDefault } from '../src/util/busy-poll.js';
import { stopChild } from './lib.js';

/** Data frame: u32 length, u64 offset, u32 sequence number, then the payload. */
const dataHeaderBytes = 16;

/** Calls `onFrame` for every whole frame in the stream; `headerBytes` and the frame's length from its header. */
function framer(
  headerBytes: number,
  lengthOf: (b: Buffer, at: number) => number,
  onFrame: (b: Buffer, at: number) => void,
): (chunk: Buffer) => void {
  let held = Buffer.alloc(0);
  return (chunk) => {
    const buf = held.length > 0 ? Buffer.concat([held, chunk]) : chunk;
    let at = 0;
    while (buf.length - at >= headerBytes) {
      const whole = headerBytes + lengthOf(buf, at);
      if (buf.length - at < whole) break;
      onFrame(buf, at);
      at += whole;
    }
    held = at < buf.length ? Buffer.from(buf.subarray(at)) : Buffer.alloc(0);
  };
}

const busyPoll = new BusyPoll({ maxUs: busyPollUsDefault });

function peer(file: string, port: number, flushMs: number): void {
  const fd = openSync(file, 'r+');
  if (flushMs > 0) {
    const flush = (): void => {
      fdatasync(fd, () => setTimeout(flush, flushMs));
    };
    setTimeout(flush, flushMs);
  }
  const server = createServer((s: Socket) => {
    s.setNoDelay(true);
    s.on('error', () => s.destroy());
    let acks: number[] = [];
    const sendAcks = (): void => {
      const b = Buffer.allocUnsafe(4 + 4 * acks.length);
      b.writeUInt32LE(acks.length, 0);
      for (let i = 0; i < acks.length; i++) b.writeUInt32LE(acks[i]!, 4 + 4 * i);
      acks = [];
      s.write(b);
    };
    s.on('data', busyPoll.activity);
    s.on(
      'data',
      framer(
        dataHeaderBytes,
        (b, at) => b.readUInt32LE(at),
        (b, at) => {
          const length = b.readUInt32LE(at);
          writeSync(fd, b, at + dataHeaderBytes, length, Number(b.readBigUInt64LE(at + 4)));
          if (acks.length === 0) setImmediate(sendAcks);
          acks.push(b.readUInt32LE(at + 12));
        },
      ),
    );
  });
  server.listen(port, '127.0.0.1', () => process.stdout.write('ready\n'));
}

async function primary(file: string, port: number, socketPath: string, sizeBytes: number): Promise<void> {
  const fd = openSync(file, 'r+');
  const link = connect(port, '127.0.0.1');
  link.setNoDelay(true);
  // A peer that dies ends the primary too: fio then fails and the bench says so.
  link.on('error', (e) => {
    process.stderr.write(`node floor primary: link to the peer: ${e.message}\n`);
    process.exit(1);
  });
  link.on('close', () => process.exit(1));
  await new Promise((resolve) => link.once('connect', resolve));
  const waiting = new Map<number, () => void>();
  link.on('data', busyPoll.activity);
  link.on(
    'data',
    framer(
      4,
      (b, at) => 4 * b.readUInt32LE(at),
      (b, at) => {
        const n = b.readUInt32LE(at);
        for (let i = 0; i < n; i++) {
          const seq = b.readUInt32LE(at + 4 + 4 * i);
          waiting.get(seq)?.();
          waiting.delete(seq);
        }
      },
    ),
  );
  let seq = 0;
  let corked = false;
  const write = (buf: Buffer, offset: number): Promise<void> => {
    writeSync(fd, buf, 0, buf.length, offset);
    const head = Buffer.allocUnsafe(dataHeaderBytes);
    const s = ++seq;
    head.writeUInt32LE(buf.length, 0);
    head.writeBigUInt64LE(BigInt(offset), 4);
    head.writeUInt32LE(s, 12);
    // One writev per event-loop turn, as tandem's link does.
    if (!corked) {
      corked = true;
      link.cork();
      process.nextTick(() => {
        corked = false;
        link.uncork();
      });
    }
    link.write(head);
    link.write(buf);
    return new Promise((resolve) => waiting.set(s, resolve));
  };
  const nothing = async (): Promise<void> => {};
  const server = new NbdServer({ activity: busyPoll.activity });
  server.add({
    name: 'r0',
    description: 'node floor',
    sizeBytes,
    readOnly: false,
    refusal: () => undefined,
    read: nothing,
    write: (buf, offset) => write(buf, offset),
    writeFast: (buf, offset) => write(buf, offset),
    flush: nothing,
    trim: nothing,
    writeZeroes: nothing,
    clientOpened: () => {},
    clientClosed: () => {},
  });
  await server.listenUnix(socketPath);
  process.stdout.write('ready\n');
}

export interface NodeFloor {
  /** The primary's NBD URI. */
  readonly uri: string;
  stop(): Promise<void>;
}

/**
 * Starts the pair: the peer writing `peerFile`, the primary writing `file` and serving
 * NBD on `socketPath` (export r0, `sizeBytes`). Files are used as they are (a bench's scratch).
 */
export async function startNodeFloor(o: {
  file: string;
  peerFile: string;
  socketPath: string;
  port: number;
  sizeBytes: number;
  flushMs?: number;
}): Promise<NodeFloor> {
  const self = fileURLToPath(import.meta.url);
  const start = async (args: string[]) => {
    // stdin is a pipe the child watches: it exits with the bench, as nbdkit --exit-with-parent.
    const child = spawn(process.execPath, [self, ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`node floor ${args[1]} exited (${code})`)));
      child.stdout.once('data', () => resolve());
    });
    return child;
  };
  const peerChild = await start([
    '--mode',
    'peer',
    '--file',
    o.peerFile,
    '--port',
    String(o.port),
    '--flush-ms',
    String(o.flushMs ?? 50),
  ]);
  try {
    const primaryChild = await start([
      '--mode',
      'primary',
      '--file',
      o.file,
      '--port',
      String(o.port),
      '--socket',
      o.socketPath,
      '--size',
      String(o.sizeBytes),
    ]);
    return {
      uri: `nbd+unix:///r0?socket=${o.socketPath}`,
      stop: async () => {
        await stopChild(primaryChild);
        await stopChild(peerChild);
      },
    };
  } catch (e) {
    await stopChild(peerChild);
    throw e;
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      mode: { type: 'string' },
      file: { type: 'string' },
      port: { type: 'string' },
      socket: { type: 'string' },
      size: { type: 'string' },
      'flush-ms': { type: 'string', default: '50' },
    },
  });
  process.stdin.on('close', () => process.exit(0));
  process.stdin.resume();
  if (values.mode === 'peer') peer(values.file!, Number(values.port), Number(values['flush-ms']));
  else await primary(values.file!, Number(values.port), values.socket!, Number(values.size));
}
