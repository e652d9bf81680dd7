// The operator's views of the status model: drbdadm status (DRBD 9), /proc/drbd
// (8.4), drbd-overview and drbdsetup events2, as golden text.
import assert from 'node:assert/strict';
import test from 'node:test';
import {
  diffEvents,
  type ResourceStatus,
  renderEventsNow,
  renderOverview,
  renderProc,
  renderStatus,
  type VolumeStatus,
} from '../../src/daemon/status.js';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

function volume(patch: Partial<VolumeStatus> = {}): VolumeStatus {
  return {
    volume: 0,
    minor: 1,
    device: '/dev/drbd1',
    disk: 'UpToDate',
    peerDisk: 'UpToDate',
    replication: 'Connected',
    sizeBytes: 10 * GiB,
    outOfSyncBytes: 0,
    nbdExport: 'r0',
    kernelDevice: null,
    diskReason: null,
    sync: null,
    verify: null,
    splitBrain: null,
    counters: {
      sentBytes: 1024 * 1024,
      receivedBytes: 0,
      diskWrittenBytes: 1024 * 1024,
      diskReadBytes: 2048 * 1024,
      pending: 0,
      unacked: 0,
      appPending: 0,
      epochs: 0,
    },
    ...patch,
  };
}

function resource(patch: Partial<ResourceStatus> = {}, volumes = [volume()]): ResourceStatus {
  return {
    name: 'r0',
    role: 'Primary',
    peerRole: 'Secondary',
    connection: 'Connected',
    connectionReason: null,
    peer: 'bravo',
    protocol: 'C',
    authenticated: false,
    nbdSocket: '/run/tandem/r0.nbd',
    nbdTcp: null,
    nbdClients: 0,
    volumes,
    ...patch,
  };
}

// 10 GiB to sync, 3.21 GiB done, 256 MiB/s.
const syncing = volume({
  replication: 'SyncSource',
  peerDisk: 'Inconsistent',
  outOfSyncBytes: 10 * GiB - Math.round(3.21 * GiB),
  sync: { totalBytes: 10 * GiB, doneBytes: Math.round(3.21 * GiB), speedBytesPerSecond: 256 * MiB },
});

test('status: connected and in sync', () => {
  assert.equal(
    renderStatus([resource()]),
    'r0 role:Primary\n  disk:UpToDate\n  bravo connection:Connected\n    role:Secondary\n    peer-disk:UpToDate\n',
  );
});

test('status: a resync shows replication and done', () => {
  assert.match(
    renderStatus([resource({}, [syncing])]),
    /\n {4}replication:SyncSource peer-disk:Inconsistent done:32\.10\n/,
  );
});

test('status: a split brain says so, with the text', () => {
  const out = renderStatus([
    resource({ connection: 'StandAlone', peerRole: 'Unknown' }, [
      volume({ peerDisk: 'DUnknown', splitBrain: 'Split-Brain detected' }),
    ]),
  ]);
  assert.match(out, /bravo connection:StandAlone\n {2}split-brain: Split-Brain detected\n/);
  assert.doesNotMatch(out, /peer-disk/);
});

test('proc: the 8.4 lines, counters in KiB, and the sync progress', () => {
  assert.equal(
    renderProc([resource()]),
    'version: 8.4.11 (tandem)\n 1: cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate C r-----\n' +
      '    ns:1024 nr:0 dw:1024 dr:2048 al:0 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:0\n',
  );
  const lines = renderProc([resource({}, [syncing])]).split('\n');
  assert.equal(lines[1], ' 1: cs:SyncSource ro:Primary/Secondary ds:UpToDate/Inconsistent C r-----');
  assert.equal(lines[3], "\t[======>.............] sync'ed: 32.1% (6952/10240)M");
  assert.equal(lines[4], '\tfinish: 0:00:27 speed: 262,144 (262,144) K/sec');
});

test('proc: a stalled sync has no finish time', () => {
  const v = volume({
    replication: 'SyncTarget',
    sync: { totalBytes: GiB, doneBytes: 0, speedBytesPerSecond: 0 },
  });
  assert.match(
    renderProc([resource({}, [v])]),
    /\[>\.{19}\] sync'ed: 0\.0% \(1024\/1024\)M\n\tfinish: --:--:-- speed: 0 \(0\) K\/sec/,
  );
});

test('overview: one aligned line per volume', () => {
  const two = resource({}, [
    volume(),
    volume({ volume: 1, minor: 2, disk: 'Inconsistent', replication: 'SyncTarget' }),
  ]);
  assert.equal(
    renderOverview([two]),
    '  1:r0/0  Connected   Primary/Secondary  UpToDate/UpToDate\n  2:r0/1  SyncTarget  Primary/Secondary  Inconsistent/UpToDate\n',
  );
});

test('events --now and the changes between two snapshots', () => {
  assert.equal(
    renderEventsNow([resource()]),
    [
      'exists resource name:r0 role:Primary suspended:no',
      'exists connection name:r0 peer-node-id:1 conn-name:bravo connection:Connected role:Secondary',
      'exists device name:r0 volume:0 minor:1 disk:UpToDate',
      'exists peer-device name:r0 peer-node-id:1 conn-name:bravo volume:0 replication:Established peer-disk:UpToDate resync-suspended:no',
      'exists -',
      '',
    ].join('\n'),
  );
  assert.deepEqual(diffEvents([resource()], [resource()]), []);
  assert.deepEqual(diffEvents([resource()], [resource({ role: 'Secondary' }, [syncing])]), [
    'change resource name:r0 role:Secondary',
    'change peer-device name:r0 peer-node-id:1 conn-name:bravo volume:0 replication:SyncSource peer-disk:Inconsistent',
  ]);
});
