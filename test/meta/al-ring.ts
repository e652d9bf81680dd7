// A fake activity-log ring for tests: the eight 4 KiB blocks in memory, written the
// way the store writes them, with a way to tear the next write.
import { ActivityLog, type AlWrite } from '../../src/meta/activity-log.js';
import { alRingBlocks, alTransactionBytes } from '../../src/meta/layout.js';

export class FakeRing {
  readonly blocks: Buffer[] = Array.from({ length: alRingBlocks }, () => Buffer.alloc(alTransactionBytes));

  write(w: AlWrite): void {
    w.block.copy(this.blocks[w.ringIndex]!);
  }

  /** The first `bytes` of the block land, the rest keeps what was there: a crash mid-write. */
  tear(w: AlWrite, bytes: number): void {
    w.block.copy(this.blocks[w.ringIndex]!, 0, 0, bytes);
  }
}

/** A log whose reset is already on the ring, as create-md leaves it. */
export function freshLog(slots: number, metaId: bigint, ring: FakeRing): ActivityLog {
  const al = new ActivityLog(slots, metaId, 0);
  const w = al.reset();
  ring.write(w);
  al.committed(w.seq);
  return al;
}
