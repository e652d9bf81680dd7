// Two Resources in one process on loopback for replication tests: memory disks with
// real metadata, the link through a LinkProxy (hold a direction, cut, partition), and
// each node's data disk behind a gate that can hold writes and flushes.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDrbdConfig } from '../../src/config/drbd-load.js';
import { localHost, resolveConfig } from '../../src/config/drbd-resolve.js';
import { volumeMeta } from '../../src/device/disk.js';
import { Resource } from '../../src/device/resource.js';
import type { VolumeOpener } from '../../src/device/volume.js';
import { computeLayout } from '../../src/meta/layout.js';
import { MetaStore } from '../../src/meta/store.js';
import { syncWriteBytesMax } from '../../src/storage/file.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { type BlockStorage, StorageError } from '../../src/storage/storage.js';
import { StorageView } from '../../src/storage/view.js';
import { memoryLogger } from '../../src/util/log.js';
import { freePort } from './cluster.js';
import { LinkProxy } from './link-proxy.js';

export const backingBytes = 32 * 1024 * 1024;

/** A disk whose writes and flushes can be held (a slow or stuck disk). */
export class GatedStorage implements BlockStorage {
  private gate: Promise<void> | undefined;
  private open: (() => void) | undefined;
  writes = 0;
  flushes = 0;
  constructor(private readonly inner: BlockStorage) {}
  get sizeBytes(): number {
    return this.inner.sizeBytes;
  }
  get name(): string {
    return this.inner.name;
  }
  hold(): void {
    this.gate ??= new Promise((r) => {
      this.open = r;
    });
  }
  release(): void {
    this.open?.();
    this.gate = undefined;
    this.openFlush?.();
    this.flushGate = undefined;
  }
  read(buf: Uint8Array, offset: number): Promise<void> {
    return this.inner.read(buf, offset);
  }
  /** Writes fail with EIO (a dying disk) while set. */
  failWrites = false;
  /** Writes waiting at the gate now. */
  held = 0;
  async write(buf: Uint8Array, offset: number): Promise<void> {
    if (this.gate) {
      this.held++;
      await this.gate;
      this.held--;
    }
    if (this.failWrites)
      throw new StorageError('EIO', `${this.name}: injected write error at ${offset}`, offset, buf.length);
    this.writes++;
    return this.inner.write(buf, offset);
  }
  /**
   * Small writes (up to FileStorage's limit, as on a real disk) may be taken at once, on
   * the event loop, when not held; false: always through write().
   */
  atOnce = true;
  writesSync(length: number): boolean {
    return (
      this.atOnce &&
      this.gate === undefined &&
      length <= syncWriteBytesMax &&
      (this.inner.writesSync?.(length) ?? false)
    );
  }
  /** Of `writes`, those taken at once (writeSync). */
  syncWrites = 0;
  writeSync(buf: Uint8Array, offset: number): void {
    if (this.failWrites)
      throw new StorageError('EIO', `${this.name}: injected write error at ${offset}`, offset, buf.length);
    this.writes++;
    this.syncWrites++;
    (this.inner.writeSync as (b: Uint8Array, o: number) => void).call(this.inner, buf, offset);
  }
  /** Holds only flushes (a disk whose cache flush hangs), until release(). */
  holdFlushes(): void {
    this.flushGate ??= new Promise((r) => {
      this.openFlush = r;
    });
  }
  private flushGate: Promise<void> | undefined;
  private openFlush: (() => void) | undefined;
  async flush(): Promise<void> {
    if (this.gate) await this.gate;
    if (this.flushGate) await this.flushGate;
    this.flushes++;
    return this.inner.flush();
  }
  discard(offset: number, length: number): Promise<void> {
    return this.inner.discard(offset, length);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

export interface Node {
  readonly res: Resource;
  readonly disk: MemoryStorage;
  readonly data: GatedStorage;
  readonly log: ReturnType<typeof memoryLogger>;
}

/**
 * A memory disk with fresh internal metadata and the opener of its volume; `wrap` puts
 * a layer (a gate, a counter) over its data area.
 */
export async function memoryVolume<D extends BlockStorage>(
  bytes: number,
  name: string,
  wrap: (data: BlockStorage) => D,
  alSlots?: number,
): Promise<{ disk: MemoryStorage; data: D; opener: VolumeOpener }> {
  const disk = new MemoryStorage(bytes, name);
  const layout = computeLayout({ kind: 'internal', backingBytes: bytes });
  await MetaStore.create(disk, layout);
  const data = wrap(new StorageView(disk, 0, layout.dataBytes));
  const opener: VolumeOpener = async () => {
    const store = await MetaStore.open(disk, layout, alSlots === undefined ? {} : { alSlots });
    return { data, meta: volumeMeta(store, { layout, metaDevice: disk, data, close: async () => {} }) };
  };
  return { disk, data, opener };
}

/** Options of the pair beyond its configuration: both nodes get them. */
export interface PairOptions {
  /** Activity-log slots (al-extents) of both volumes. */
  readonly alSlots?: number;
  /** The longest an epoch with writes stays open (ResourceOptions.barrierIntervalMs). */
  readonly barrierIntervalMs?: number;
}

export async function pair(protocol: 'A' | 'B' | 'C', extraNet = '', extraConf = '', opts: PairOptions = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'tandem-repl-'));
  const [pa, pb] = [await freePort(), await freePort()];
  const text = `resource r0 {
  device /dev/drbd1; disk /dev/fake; meta-disk internal;
  net { protocol ${protocol}; connect-int 1; ${extraNet} }
  ${extraConf}
  on a { address 127.0.0.1:${pa}; }
  on b { address 127.0.0.1:${pb}; }
}`;
  const cfg = resolveConfig(parseDrbdConfig(text, 'test.res')).resources[0]!;
  // a dials b through the proxy; 'a' sorts first, so a's connection is the one kept.
  const proxy = await LinkProxy.start({ host: '127.0.0.1', port: pb });
  const make = async (name: 'a' | 'b'): Promise<Node> => {
    const { disk, data, opener } = await memoryVolume(
      backingBytes,
      `mem-${name}`,
      (d) => new GatedStorage(d),
      opts.alSlots,
    );
    const log = memoryLogger();
    const res = new Resource(cfg, localHost(cfg, name), {
      runDir: join(dir, name),
      log,
      opener,
      kernelDevices: false,
      ...(opts.barrierIntervalMs === undefined ? {} : { barrierIntervalMs: opts.barrierIntervalMs }),
      ...(name === 'a' ? { peerEndpoint: { host: '127.0.0.1', port: proxy.port } } : {}),
    });
    return { res, disk, data, log };
  };
  mkdirSync(join(dir, 'a'));
  mkdirSync(join(dir, 'b'));
  const a = await make('a');
  const b = await make('b');
  await a.res.bringUp();
  await b.res.bringUp();
  return {
    a,
    b,
    proxy,
    async cleanup() {
      proxy.release('forward');
      proxy.release('backward');
      a.data.release();
      b.data.release();
      await a.res.down().catch(() => a.res.forceClose());
      await b.res.down().catch(() => b.res.forceClose());
      await proxy.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function waitFor(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export const vol = (n: Node) => n.res.status().volumes[0]!;

/** Connected, a Primary after the initial full sync, both UpToDate. */
export async function syncedPair(
  protocol: 'A' | 'B' | 'C',
  extraNet = '',
  extraConf = '',
  opts: PairOptions = {},
) {
  const p = await pair(protocol, extraNet, extraConf, opts);
  await waitFor(
    'connected',
    () => p.a.res.status().connection === 'Connected' && p.b.res.status().connection === 'Connected',
  );
  await p.a.res.primary(true);
  await waitFor(
    'sync',
    () =>
      vol(p.a).peerDisk === 'UpToDate' &&
      vol(p.b).disk === 'UpToDate' &&
      vol(p.a).replication === 'Connected',
  );
  return p;
}

/** Whether `promise` settles within `ms` (true as soon as it does). */
export async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const settled = await Promise.race([
    promise.then(
      () => true,
      () => true,
    ),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
    }),
  ]);
  clearTimeout(timer);
  return settled;
}
