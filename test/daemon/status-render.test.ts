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
      alWrites: 0,
      bitmapWrites: 0,
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
    authenticated: true,
    nbdSocket: '/run/tandem/r0.nbd',
    nbdTcp: null,
    nbdClients: 0,
    volumes,
    ...patch,
  };
}

// 10 GiB to sync, 3.21 GiB done, 256 MiB/s: 32.1 %, 6952 of 10240 MiB left (DRBD
// counts 4 KiB bits and shows whole 4 MiB steps), 27 s to go, 262,144 K/sec.
const doneBytes = Math.round(3.21 * GiB);
const syncing = volume({
  replication: 'SyncSource',
  peerDisk: 'Inconsistent',
  outOfSyncBytes: 10 * GiB - doneBytes,
  sync: { totalBytes: 10 * GiB, doneBytes, speedBytesPerSecond: 256 * MiB },
});

// An online verify of 1 GiB, 128 MiB verified at 100 MiB/s: below 4 GiB, DRBD shows KiB.
const verifying = volume({
  replication: 'VerifyS',
  sync: { totalBytes: GiB, doneBytes: 128 * MiB, speedBytesPerSecond: 100 * MiB },
});

const splitBrain = resource({ connection: 'StandAlone', peerRole: 'Unknown' }, [
  volume({
    peerDisk: 'DUnknown',
    replication: 'StandAlone',
    splitBrain: 'Split-Brain detected, dropping connection!',
  }),
]);

const twoVolumes = resource({}, [
  volume(),
  volume({
    volume: 1,
    minor: 2,
    device: '/dev/drbd2',
    disk: 'Inconsistent',
    replication: 'SyncTarget',
    outOfSyncBytes: 512 * MiB,
    sync: { totalBytes: GiB, doneBytes: 512 * MiB, speedBytesPerSecond: 0 },
  }),
]);

// ------------------------------------------------------------ drbdadm status

test('status: connected and in sync', () => {
  assert.equal(
    renderStatus([resource()]),
    'r0 role:Primary\n  disk:UpToDate\n  bravo connection:Connected\n    role:Secondary\n    peer-disk:UpToDate\n',
  );
});

test('status: a link without a shared-secret says it is unauthenticated', () => {
  assert.match(
    renderStatus([resource({ authenticated: false })]),
    /^ {2}bravo connection:Connected unauthenticated$/m,
  );
  assert.doesNotMatch(
    renderStatus([resource({ authenticated: false, connection: 'WFConnection' })]),
    /unauthenticated/,
  );
});

test('status: a resync shows replication and done with two decimals', () => {
  assert.equal(
    renderStatus([resource({}, [syncing])]),
    [
      'r0 role:Primary',
      '  disk:UpToDate out-of-sync:7119832k',
      '  bravo connection:Connected',
      '    role:Secondary',
      '    replication:SyncSource peer-disk:Inconsistent done:32.10',
      '',
    ].join('\n'),
  );
});

test('status: an online verify and a bitmap exchange show their replication state', () => {
  const out = renderStatus([resource({}, [verifying])]);
  assert.match(out, /\n {4}replication:VerifyS peer-disk:UpToDate done:12\.50\n/);
  const bitmap = renderStatus([resource({}, [volume({ replication: 'WFBitMapS' })])]);
  assert.match(bitmap, /\n {4}replication:WFBitMapS peer-disk:UpToDate\n/);
});

test('status: a split brain says so, with the text, and no peer lines', () => {
  assert.equal(
    renderStatus([splitBrain]),
    [
      'r0 role:Primary',
      '  disk:UpToDate',
      '  bravo connection:StandAlone',
      '  split-brain: Split-Brain detected, dropping connection!',
      '',
    ].join('\n'),
  );
});

test('status: two volumes are named by volume number', () => {
  assert.equal(
    renderStatus([twoVolumes]),
    [
      'r0 role:Primary',
      '  volume:0 disk:UpToDate',
      '  volume:1 disk:Inconsistent out-of-sync:524288k',
      '  bravo connection:Connected',
      '    role:Secondary',
      '    volume:0 peer-disk:UpToDate',
      '    volume:1 replication:SyncTarget peer-disk:UpToDate done:50.00',
      '',
    ].join('\n'),
  );
});

test('status: a waiting connection shows no reason and no peer-device lines', () => {
  const out = renderStatus([
    resource({ connection: 'WFConnection', connectionReason: 'connect ECONNREFUSED', peerRole: 'Unknown' }, [
      volume({ peerDisk: 'DUnknown', replication: 'WFConnection' }),
    ]),
  ]);
  assert.equal(out, 'r0 role:Primary\n  disk:UpToDate\n  bravo connection:WFConnection\n');
});

// ---------------------------------------------------------------- /proc/drbd

test('proc: the 8.4 lines, counters in KiB; a blank line as minor 0 is missing', () => {
  assert.equal(
    renderProc([resource()]),
    [
      'version: 8.4.11 (tandem)',
      '',
      ' 1: cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate C r-----',
      '    ns:1024 nr:0 dw:1024 dr:2048 al:0 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:0',
      '',
    ].join('\n'),
  );
});

test('proc: counters round up to KiB and al/bm/pe/ua/ap/ep/oos come from the model', () => {
  const v = volume({
    minor: 0,
    outOfSyncBytes: 4097,
    counters: {
      sentBytes: 1025,
      receivedBytes: 3 * MiB,
      diskWrittenBytes: 0,
      diskReadBytes: 1,
      pending: 2,
      unacked: 3,
      appPending: 4,
      epochs: 0,
      alWrites: 5,
      bitmapWrites: 6,
    },
  });
  assert.equal(
    renderProc([resource({ protocol: 'A' }, [v])], '8.4.11-1 (api:1/proto:86-101)'),
    [
      'version: 8.4.11-1 (api:1/proto:86-101)',
      ' 0: cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate A r-----',
      '    ns:2 nr:3072 dw:0 dr:1 al:5 bm:6 lo:0 pe:2 ua:3 ap:4 ep:1 wo:f oos:5',
      '',
    ].join('\n'),
  );
});

test("proc: a resync shows DRBD's bar, percent, MiB left/total, finish and speed", () => {
  assert.equal(
    renderProc([resource({}, [syncing])]),
    [
      'version: 8.4.11 (tandem)',
      '',
      ' 1: cs:SyncSource ro:Primary/Secondary ds:UpToDate/Inconsistent C r-----',
      '    ns:1024 nr:0 dw:1024 dr:2048 al:0 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:7119832',
      "\t[=====>..............] sync'ed: 32.1% (6952/10240)M",
      '\tfinish: 0:00:27 speed: 262,144 (262,144) K/sec',
      '',
    ].join('\n'),
  );
});

test('proc: a stalled sync below 4 GiB: KiB, 21-cell bar at 0 %, no finish time', () => {
  const v = volume({
    replication: 'SyncTarget',
    disk: 'Inconsistent',
    sync: { totalBytes: GiB, doneBytes: 0, speedBytesPerSecond: 0 },
  });
  const lines = renderProc([resource({ role: 'Secondary', peerRole: 'Primary' }, [v])]).split('\n');
  assert.equal(lines[4], "\t[>....................] sync'ed:  0.0% (1048576/1048576)K");
  assert.equal(lines[5], '\tfinish: --:--:-- speed: 0 (0) K/sec');
});

test('proc: MiB only above 4 GiB, hours in the finish time, millions grouped', () => {
  const at = (totalBytes: number, doneBytes: number, speedBytesPerSecond: number) =>
    renderProc([
      resource({}, [
        volume({ replication: 'SyncSource', sync: { totalBytes, doneBytes, speedBytesPerSecond } }),
      ]),
    ])
      .split('\n')
      .slice(4, 6);
  assert.deepEqual(at(4 * GiB, 0, 512), [
    "\t[>....................] sync'ed:  0.0% (4194304/4194304)K",
    '\tfinish: 2330:10:08 speed: 0 (0) K/sec',
  ]);
  assert.deepEqual(at(4 * GiB + 4096, 0, 10 * MiB), [
    "\t[>....................] sync'ed:  0.0% (4096/4096)M",
    '\tfinish: 0:06:49 speed: 10,240 (10,240) K/sec',
  ]);
  assert.deepEqual(at(100 * GiB, 0, 10 * MiB)[1], '\tfinish: 2:50:40 speed: 10,240 (10,240) K/sec');
  assert.deepEqual(at(100 * GiB, 50 * GiB, 2 * GiB), [
    "\t[=========>..........] sync'ed: 50.0% (51200/102400)M",
    '\tfinish: 0:00:25 speed: 2,097,152 (2,097,152) K/sec',
  ]);
  assert.deepEqual(at(GiB, GiB, 999 * 1024), [
    "\t[===================>] sync'ed:100.0% (0/1048576)K",
    '\tfinish: 0:00:00 speed: 999 (999) K/sec',
  ]);
});

test('proc: an online verify says verified:', () => {
  const lines = renderProc([resource({}, [verifying])]).split('\n');
  assert.equal(lines[2], ' 1: cs:VerifyS ro:Primary/Secondary ds:UpToDate/UpToDate C r-----');
  assert.equal(lines[4], '\t[=>..................] verified: 12.5% (917504/1048576)K');
  assert.equal(lines[5], '\tfinish: 0:00:08 speed: 102,400 (102,400) K/sec');
});

test('proc: a paused resync has no progress lines', () => {
  const v = volume({
    replication: 'PausedSyncS',
    sync: { totalBytes: GiB, doneBytes: 0, speedBytesPerSecond: 0 },
  });
  assert.doesNotMatch(renderProc([resource({}, [v])]), /sync'ed|finish/);
});

test('proc: minors in order, blank lines at gaps, StandAlone without protocol, Unconfigured', () => {
  const r0 = resource({}, [volume({ minor: 0 }), volume({ volume: 1, minor: 1 })]);
  const r1 = resource({ name: 'r1', role: 'Secondary', peerRole: 'Unknown', connection: 'StandAlone' }, [
    volume({ minor: 3, replication: 'StandAlone', peerDisk: 'DUnknown', disk: 'Diskless' }),
  ]);
  const r2 = resource({ name: 'r2', peerRole: 'Unknown', connection: 'StandAlone' }, [
    volume({ minor: 4, replication: 'StandAlone', peerDisk: 'DUnknown' }),
  ]);
  const counters = '    ns:1024 nr:0 dw:1024 dr:2048 al:0 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:0';
  assert.equal(
    renderProc([r2, r1, r0]),
    [
      'version: 8.4.11 (tandem)',
      ' 0: cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate C r-----',
      counters,
      ' 1: cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate C r-----',
      counters,
      '',
      ' 3: cs:Unconfigured',
      ' 4: cs:StandAlone ro:Primary/Unknown ds:UpToDate/DUnknown   r-----',
      counters,
      '',
    ].join('\n'),
  );
});

// ---------------------------------------------------------------- drbd-overview

test('overview: one line as drbd-overview prints it', () => {
  assert.equal(renderOverview([resource()]), '  1:r0/0  Connected Primary/Secondary UpToDate/UpToDate\n');
});

test('overview: columns aligned over volumes, the resync progress appended', () => {
  assert.equal(
    renderOverview([twoVolumes]),
    [
      '  1:r0/0  Connected  Primary/Secondary UpToDate/UpToDate',
      "  2:r0/1  SyncTarget Primary/Secondary Inconsistent/UpToDate [=========>..........] sync'ed: 50.0% (524288/1048576)K",
      '',
    ].join('\n'),
  );
  assert.equal(
    renderOverview([resource({}, [syncing]), resource({ name: 'data' }, [volume({ minor: 12 })])]),
    [
      "  1:r0/0    SyncSource Primary/Secondary UpToDate/Inconsistent [=====>..............] sync'ed: 32.1% (6952/10240)M",
      ' 12:data/0  Connected  Primary/Secondary UpToDate/UpToDate',
      '',
    ].join('\n'),
  );
  assert.equal(renderOverview([]), '');
});

// ---------------------------------------------------------------- events2

test('events --now: resource, connection, device, peer-device, then exists -', () => {
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
  assert.equal(renderEventsNow([]), 'exists -\n');
});

test('events --now: devices before peer devices, done: while syncing', () => {
  assert.equal(
    renderEventsNow([twoVolumes]),
    [
      'exists resource name:r0 role:Primary suspended:no',
      'exists connection name:r0 peer-node-id:1 conn-name:bravo connection:Connected role:Secondary',
      'exists device name:r0 volume:0 minor:1 disk:UpToDate',
      'exists device name:r0 volume:1 minor:2 disk:Inconsistent',
      'exists peer-device name:r0 peer-node-id:1 conn-name:bravo volume:0 replication:Established peer-disk:UpToDate resync-suspended:no',
      'exists peer-device name:r0 peer-node-id:1 conn-name:bravo volume:1 replication:SyncTarget peer-disk:UpToDate resync-suspended:no done:50.00',
      'exists -',
      '',
    ].join('\n'),
  );
  assert.match(
    renderEventsNow([resource({}, [syncing])]),
    / volume:0 replication:SyncSource peer-disk:Inconsistent resync-suspended:no done:32\.10\n/,
  );
});

test("events --now: DRBD 9's names without a connection (Connecting, replication Off)", () => {
  const waiting = resource({ connection: 'WFConnection', peerRole: 'Unknown' }, [
    volume({ peerDisk: 'DUnknown', replication: 'WFConnection' }),
  ]);
  const lines = renderEventsNow([waiting, { ...splitBrain, name: 'r1' }]).split('\n');
  assert.equal(
    lines[1],
    'exists connection name:r0 peer-node-id:1 conn-name:bravo connection:Connecting role:Unknown',
  );
  assert.equal(
    lines[3],
    'exists peer-device name:r0 peer-node-id:1 conn-name:bravo volume:0 replication:Off peer-disk:DUnknown resync-suspended:no',
  );
  assert.equal(
    lines[5],
    'exists connection name:r1 peer-node-id:1 conn-name:bravo connection:StandAlone role:Unknown',
  );
  assert.match(lines[7] ?? '', / replication:Off peer-disk:DUnknown /);
});

test('diffEvents: no change, no lines; progress alone is no change', () => {
  assert.deepEqual(diffEvents([resource()], [resource()]), []);
  assert.deepEqual(diffEvents([twoVolumes], [twoVolumes]), []);
  const later = volume({ ...syncing, sync: { ...syncing.sync!, doneBytes: 5 * GiB } });
  assert.deepEqual(diffEvents([resource({}, [syncing])], [resource({}, [later])]), []);
  assert.deepEqual(diffEvents([], []), []);
});

test('diffEvents: one change line per entity, with only the changed fields', () => {
  assert.deepEqual(diffEvents([resource()], [resource({ role: 'Secondary' }, [syncing])]), [
    'change resource name:r0 role:Secondary',
    'change peer-device name:r0 peer-node-id:1 conn-name:bravo volume:0 replication:SyncSource peer-disk:Inconsistent',
  ]);
  const lost = resource({ connection: 'WFConnection', peerRole: 'Unknown' }, [
    volume({ peerDisk: 'DUnknown', replication: 'WFConnection' }),
  ]);
  assert.deepEqual(diffEvents([resource()], [lost]), [
    'change connection name:r0 peer-node-id:1 conn-name:bravo connection:Connecting role:Unknown',
    'change peer-device name:r0 peer-node-id:1 conn-name:bravo volume:0 replication:Off peer-disk:DUnknown',
  ]);
  const attached = resource({}, [volume({ disk: 'Inconsistent' })]);
  assert.deepEqual(diffEvents([resource()], [attached]), [
    'change device name:r0 volume:0 minor:1 disk:Inconsistent',
  ]);
  assert.deepEqual(
    diffEvents(
      [twoVolumes],
      [
        resource({}, [
          volume(),
          { ...twoVolumes.volumes[1]!, disk: 'UpToDate', replication: 'Connected', sync: null },
        ]),
      ],
    ),
    [
      'change device name:r0 volume:1 minor:2 disk:UpToDate',
      'change peer-device name:r0 peer-node-id:1 conn-name:bravo volume:1 replication:Established',
    ],
  );
});

test('diffEvents: create for what appears, destroy for what goes (peer devices first)', () => {
  assert.deepEqual(diffEvents([], [resource()]), [
    'create resource name:r0 role:Primary suspended:no',
    'create connection name:r0 peer-node-id:1 conn-name:bravo connection:Connected role:Secondary',
    'create device name:r0 volume:0 minor:1 disk:UpToDate',
    'create peer-device name:r0 peer-node-id:1 conn-name:bravo volume:0 replication:Established peer-disk:UpToDate resync-suspended:no',
  ]);
  assert.deepEqual(diffEvents([resource()], []), [
    'destroy peer-device name:r0 peer-node-id:1 conn-name:bravo volume:0',
    'destroy device name:r0 volume:0 minor:1',
    'destroy connection name:r0 peer-node-id:1 conn-name:bravo',
    'destroy resource name:r0',
  ]);
});
