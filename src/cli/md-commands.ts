// create-md and dump-md: work offline, straight on the backing disk, as
// drbdadm's do (no daemon involved). create-md asks before it overwrites.
import { createInterface } from 'node:readline/promises';
import type { ResolvedVolume } from '../config/drbd-model.js';
import { type OpenedDisk, openDisk } from '../device/disk.js';
import { dumpMetaJson, dumpMetaText } from '../meta/dump.js';
import { MetaError } from '../meta/errors.js';
import { readMeta } from '../meta/read.js';
import { detectExisting, hasFilesystemSignature, MetaStore, signatureScanBytes } from '../meta/store.js';
import { CliError, exitCodes } from './errors.js';

export interface MdContext {
  readonly force: boolean;
  readonly alSlots: number | undefined;
  readonly nodeId: number | undefined;
  readonly out: (t: string) => void;
  readonly err: (t: string) => void;
}

async function confirm(question: string): Promise<boolean> {
  if (!process.stdin.isTTY) return false;
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(`${question} [need to type 'yes' to confirm] `);
    return answer.trim() === 'yes';
  } finally {
    rl.close();
  }
}

function mdError(e: unknown, v: ResolvedVolume): never {
  if (e instanceof MetaError) throw new CliError(`${v.disk}: ${e.message}`, exitCodes.execError);
  if ((e as NodeJS.ErrnoException).code)
    throw new CliError(`${v.disk}: ${(e as Error).message}`, exitCodes.execError);
  throw e;
}

/** Opens the volume's disks, runs `use`, closes them; disk and metadata errors become one-line CLI errors. */
async function withDisk<T>(v: ResolvedVolume, use: (disk: OpenedDisk) => Promise<T>): Promise<T> {
  let disk: OpenedDisk;
  try {
    disk = await openDisk(v);
  } catch (e) {
    mdError(e, v);
  }
  try {
    return await use(disk);
  } catch (e) {
    if (e instanceof CliError) throw e;
    if (e instanceof MetaError && e.code === 'META_NOT_FOUND') {
      throw new CliError(
        `${v.disk}: no valid tandem metadata found (${e.message}); run 'tandemadm create-md'`,
        exitCodes.execError,
      );
    }
    mdError(e, v);
  } finally {
    await disk.close();
  }
}

export function createMd(v: ResolvedVolume, resource: string, ctx: MdContext): Promise<void> {
  return withDisk(v, async (disk) => {
    const existing = await detectExisting(disk.metaDevice, disk.layout);
    const head = Buffer.alloc(Math.min(signatureScanBytes, disk.layout.dataBytes));
    await disk.data.read(head, 0);
    const fs = hasFilesystemSignature(head);
    const found: string[] = [];
    if (existing.kind === 'tandem') found.push('tandem metadata');
    if (existing.kind === 'damaged') found.push(`damaged tandem metadata (${existing.error.message})`);
    if (fs) found.push(`a ${fs} signature at the start of the data`);
    if (found.length > 0 && !ctx.force) {
      const what = `${v.disk} holds ${found.join(' and ')}.`;
      if (!(await confirm(`${what}\nDo you want to overwrite the metadata of ${resource}/${v.number}?`))) {
        throw new CliError(
          `${what} Refusing to write new metadata without confirmation; use --force to overwrite`,
          exitCodes.execError,
        );
      }
    }
    ctx.err(
      `initializing activity log\ninitializing bitmap (${Math.ceil(disk.layout.bitmapBytes / 1024)} KiB) to all zero\n`,
    );
    await MetaStore.create(disk.metaDevice, disk.layout, {
      ...(ctx.alSlots === undefined ? {} : { alSlots: ctx.alSlots }),
      ...(ctx.nodeId === undefined ? {} : { nodeId: ctx.nodeId }),
    });
    ctx.err(
      `Writing meta data...\nNew tandem meta data block successfully created (${v.disk}: ${disk.layout.dataBytes} bytes of data).\n`,
    );
  });
}

export function dumpMd(v: ResolvedVolume, json: boolean, ctx: MdContext): Promise<unknown> {
  return withDisk(v, async (disk) => {
    const snap = await readMeta(disk.metaDevice, disk.layout);
    if (json) return dumpMetaJson(snap);
    ctx.out(dumpMetaText(snap));
    return undefined;
  });
}
