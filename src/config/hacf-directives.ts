// The ha.cf directives tandem-ha acts on: node, the timings, udpport, bcast/mcast/ucast,
// auto_failback, logfile/debugfile, crm/pacemaker/autojoin, accepted only when off, and
// tandem's `witness`.
import { ConfigError } from './errors.js';
import { haTextLimits, quote, type Word } from './ha-lexer.js';
import {
  readAbsolutePath,
  readBoolean,
  readDuration,
  readHost,
  readIfaceName,
  readInteger,
  readMulticastGroup,
  readNodeName,
} from './ha-values.js';
import { arg, type Builder, type Directive, type DirectiveSpec, noteSet, warn } from './hacf-builder.js';
import { type AutoFailbackMode, type HaLink, linksMax, nodesMax, type TimingName } from './hacf-model.js';

function timing(name: TimingName, what: string, minMs: number): DirectiveSpec {
  return {
    min: 1,
    max: 1,
    expects: `a time for ${what}`,
    split: 'list',
    acted: name !== 'deadping',
    apply: (b, d) => {
      const w = arg(d, 0);
      const ms = readDuration(w, what);
      if (ms < minMs) {
        throw new ConfigError(
          'CONFIG_VALUE',
          `expected ${what} of at least ${minMs} ms, found ${quote(w.text)}`,
          w.pos,
        );
      }
      noteSet(b, d);
      b.times.set(name, { ms, pos: w.pos });
    },
  };
}

function addNodes(b: Builder, d: Directive): void {
  for (const w of d.args) {
    const name = readNodeName(w);
    const earlier = b.nodes.find((n) => n.name === name);
    if (earlier) {
      warn(
        b,
        'SUSPICIOUS',
        `node ${name} is already listed at line ${earlier.pos.line}; the repetition is ignored`,
        w.pos,
      );
      continue;
    }
    if (b.nodes.length === nodesMax) {
      throw new ConfigError('CONFIG_SEMANTIC', `expected at most ${nodesMax} nodes, found more`, w.pos);
    }
    b.nodes.push({ name, pos: w.pos });
  }
}

function addLink(b: Builder, link: HaLink): void {
  if (b.links.length === linksMax) {
    throw new ConfigError('CONFIG_SEMANTIC', `expected at most ${linksMax} links, found more`, link.pos);
  }
  b.links.push(link);
}

function setUdpPort(b: Builder, d: Directive): void {
  const w = arg(d, 0);
  const port = readInteger(w, 'udpport', 1, 65535);
  noteSet(b, d);
  const media = b.links.find((l) => l.kind !== 'mcast');
  if (media) {
    // Heartbeat reads udpport when a bcast/ucast line is parsed; later changes miss earlier links.
    warn(
      b,
      'SUSPICIOUS',
      `udpport comes after the ${media.kind} link at line ${media.pos.line}, which keeps port ${media.port}; ` +
        'put udpport before the links, as Heartbeat requires',
      d.name.pos,
    );
  }
  b.udpPort = port;
}

function setAutoFailback(b: Builder, d: Directive): void {
  const w = arg(d, 0);
  let mode: AutoFailbackMode;
  if (w.text.toLowerCase() === 'legacy') {
    mode = 'legacy';
    warn(
      b,
      'DEPRECATED',
      "auto_failback legacy is deprecated in Heartbeat; it fails back like 'on': write on or off",
      w.pos,
    );
  } else {
    try {
      mode = readBoolean(w, 'auto_failback') ? 'on' : 'off';
    } catch {
      throw new ConfigError(
        'CONFIG_VALUE',
        `expected on, off or legacy for auto_failback, found ${quote(w.text)}`,
        w.pos,
      );
    }
  }
  noteSet(b, d);
  b.autoFailback = { mode, literal: w.text, pos: w.pos, failsBack: mode !== 'off' };
}

function setCrm(b: Builder, d: Directive): void {
  const w = arg(d, 0);
  const lower = w.text.toLowerCase();
  let wantsCrm: boolean;
  try {
    wantsCrm = lower === 'respawn' || readBoolean(w, d.name.text);
  } catch {
    throw new ConfigError(
      'CONFIG_VALUE',
      `expected yes, respawn or no for ${d.name.text}, found ${quote(w.text)}`,
      w.pos,
    );
  }
  if (wantsCrm) {
    throw new ConfigError(
      'CONFIG_UNSUPPORTED',
      `expected ${d.name.text} no (tandem-ha manages haresources groups as Heartbeat v1 does), found ` +
        `${d.name.text} ${w.text}, which asks for the CRM/Pacemaker cluster manager of Heartbeat v2 and later: ` +
        `remove the line or write '${d.name.text} no'`,
      w.pos,
    );
  }
  noteSet(b, d);
}

function setAutojoin(b: Builder, d: Directive): void {
  const w = arg(d, 0);
  const lower = w.text.toLowerCase();
  if (lower === 'none') {
    noteSet(b, d);
    return;
  }
  if (lower === 'other' || lower === 'any') {
    // Heartbeat refuses autojoin with haresources too ("R1 style resource management conflicts").
    throw new ConfigError(
      'CONFIG_UNSUPPORTED',
      'expected autojoin none (with haresources groups every node is listed by a node directive), ' +
        `found autojoin ${w.text}, which lets unlisted nodes join: remove the line or write 'autojoin none'`,
      w.pos,
    );
  }
  throw new ConfigError(
    'CONFIG_VALUE',
    `expected none, other or any for autojoin, found ${quote(w.text)}`,
    w.pos,
  );
}

const many = haTextLimits.wordsPerLineMax;

export const actedDirectives: readonly (readonly [string, DirectiveSpec])[] = [
  [
    'node',
    { min: 1, max: many, expects: 'one or more node names', split: 'list', acted: true, apply: addNodes },
  ],
  ['keepalive', timing('keepalive', 'keepalive', 1)],
  ['deadtime', timing('deadtime', 'deadtime', 0)],
  ['warntime', timing('warntime', 'warntime', 1)],
  ['initdead', timing('initdead', 'initdead', 0)],
  ['deadping', timing('deadping', 'deadping', 0)],
  [
    'udpport',
    { min: 1, max: 1, expects: 'a UDP port number', split: 'list', acted: true, apply: setUdpPort },
  ],
  [
    'bcast',
    {
      min: 1,
      max: many,
      expects: 'one or more interface names',
      split: 'list',
      acted: true,
      apply: (b, d) => {
        for (const w of d.args)
          addLink(b, { kind: 'bcast', iface: readIfaceName(w), port: b.udpPort, pos: w.pos });
      },
    },
  ],
  [
    'mcast',
    {
      min: 5,
      max: 5,
      expects: 'INTERFACE GROUP PORT TTL LOOP (like: eth0 225.0.0.1 694 1 0)',
      split: 'line',
      acted: true,
      apply: (b, d) => {
        addLink(b, {
          kind: 'mcast',
          iface: readIfaceName(arg(d, 0)),
          group: readMulticastGroup(arg(d, 1)),
          port: readInteger(arg(d, 2), 'the mcast port', 1, 65535),
          ttl: readInteger(arg(d, 3), 'the mcast ttl', 1, 255),
          loop: readInteger(arg(d, 4), 'the mcast loop flag', 0, 1) === 1,
          pos: arg(d, 0).pos,
        });
      },
    },
  ],
  [
    'ucast',
    {
      min: 2,
      max: 2,
      expects: 'INTERFACE ADDRESS (like: eth0 192.168.1.2)',
      split: 'line',
      acted: true,
      apply: (b, d) => {
        addLink(b, {
          kind: 'ucast',
          iface: readIfaceName(arg(d, 0)),
          host: readHost(arg(d, 1), 'ucast'),
          port: b.udpPort,
          pos: arg(d, 0).pos,
        });
      },
    },
  ],
  [
    'auto_failback',
    { min: 1, max: 1, expects: 'on, off or legacy', split: 'list', acted: true, apply: setAutoFailback },
  ],
  [
    'witness',
    {
      min: 1,
      max: 1,
      expects: 'the name of the witness node (a tandem extension)',
      split: 'list',
      acted: true,
      apply: (b, d) => {
        noteSet(b, d);
        const w = arg(d, 0);
        b.witness = { name: readNodeName(w), pos: w.pos };
      },
    },
  ],
  [
    'on_stop_failure',
    {
      min: 1,
      max: 1,
      expects: 'hold or reboot (a tandem extension)',
      split: 'list',
      acted: true,
      apply: (b, d) => {
        noteSet(b, d);
        const w = arg(d, 0);
        const v = w.text.toLowerCase();
        if (v !== 'hold' && v !== 'reboot') {
          throw new ConfigError(
            'CONFIG_VALUE',
            `expected hold or reboot for on_stop_failure, found ${quote(w.text)}`,
            w.pos,
          );
        }
        b.onStopFailure = v;
      },
    },
  ],
  [
    'metrics_address',
    oneValue('HOST:PORT where tandem-ha serves Prometheus metrics (a tandem extension)', (b, w) => {
      b.metricsAddress = readHostPort(w, 'metrics_address');
    }),
  ],
  [
    'dashboard_address',
    oneValue('HOST:PORT where tandem-ha serves its web dashboard (a tandem extension)', (b, w) => {
      b.dashboardAddress = readHostPort(w, 'dashboard_address');
    }),
  ],
  [
    'dashboard_token_file',
    oneValue(
      'the file (mode 0600) holding the token for the dashboard’s actions (a tandem extension)',
      (b, w) => {
        b.dashboardTokenFile = readAbsolutePath(w, 'dashboard_token_file');
      },
    ),
  ],
  ['crm', { min: 1, max: 1, expects: 'no', split: 'list', acted: true, apply: setCrm }],
  ['pacemaker', { min: 1, max: 1, expects: 'no', split: 'list', acted: true, apply: setCrm }],
  ['autojoin', { min: 1, max: 1, expects: 'none', split: 'list', acted: true, apply: setAutojoin }],
  [
    'logfile',
    {
      min: 1,
      max: 1,
      expects: 'a file path',
      split: 'list',
      acted: true,
      apply: (b, d) => {
        noteSet(b, d);
        b.logfile = readAbsolutePath(arg(d, 0), 'logfile');
      },
    },
  ],
  [
    'debugfile',
    {
      min: 1,
      max: 1,
      expects: 'a file path',
      split: 'list',
      acted: true,
      apply: (b, d) => {
        noteSet(b, d);
        b.debugfile = readAbsolutePath(arg(d, 0), 'debugfile');
      },
    },
  ],
];

/** A directive of one value, set once (a second one is noted), read by `set`. */
function oneValue(expects: string, set: (b: Builder, w: Word) => void): DirectiveSpec {
  return {
    min: 1,
    max: 1,
    expects,
    split: 'list',
    acted: true,
    apply: (b, d) => {
      noteSet(b, d);
      set(b, arg(d, 0));
    },
  };
}

/** HOST:PORT (IPv6 in brackets); the error names the directive and the text. */
function readHostPort(w: Word, what: string): { host: string; port: number } {
  const i = w.text.lastIndexOf(':');
  const host = w.text.slice(0, i).replace(/^\[|\]$/g, '');
  const portText = w.text.slice(i + 1);
  const port = Number(portText);
  if (i <= 0 || host === '' || !/^\d+$/.test(portText) || port > 65535) {
    throw new ConfigError(
      'CONFIG_VALUE',
      `expected HOST:PORT for ${what} (e.g. 127.0.0.1:9943), found ${quote(w.text)}`,
      w.pos,
    );
  }
  return { host, port };
}
