// The ha.cf directives tandem-ha accepts and keeps but does not act on (each one warned about):
// values are still checked where Heartbeat checks them, so a typo shows up either way.
import { ConfigError } from './errors.js';
import { haTextLimits, quote, type Word } from './ha-lexer.js';
import { readAbsolutePath, readBoolean, readHost, readInteger } from './ha-values.js';
import { arg, type Directive, type DirectiveSpec, noteSet } from './hacf-builder.js';

/** A directive kept for the record; `check` validates its values where Heartbeat would. */
function kept(
  min: number,
  max: number,
  expects: string,
  split: 'list' | 'line' = 'line',
  check?: (d: Directive) => void,
): DirectiveSpec {
  return {
    min,
    max,
    expects,
    split,
    acted: false,
    apply: (b, d) => {
      check?.(d);
      if (max === 1) noteSet(b, d);
      b.kept.push({ name: d.name.text, args: d.args.map((a) => a.text), pos: d.name.pos });
    },
  };
}

function eachArg(read: (w: Word) => unknown): (d: Directive) => void {
  return (d) => {
    for (const w of d.args) read(w);
  };
}

const syslogFacilities: ReadonlySet<string> = new Set([
  'auth',
  'authpriv',
  'cron',
  'daemon',
  'ftp',
  'kern',
  'lpr',
  'mail',
  'news',
  'syslog',
  'user',
  'uucp',
  'local0',
  'local1',
  'local2',
  'local3',
  'local4',
  'local5',
  'local6',
  'local7',
  'none',
]);

function oneOf(values: readonly string[], what: string): (d: Directive) => void {
  return (d) => {
    const w = arg(d, 0);
    if (!values.includes(w.text.toLowerCase())) {
      throw new ConfigError(
        'CONFIG_VALUE',
        `expected one of ${values.join(', ')} for ${what}, found ${quote(w.text)}`,
        w.pos,
      );
    }
  };
}

const many = haTextLimits.wordsPerLineMax;

export const keptDirectives: readonly (readonly [string, DirectiveSpec])[] = [
  [
    'ping',
    kept(
      1,
      many,
      'one or more hosts',
      'list',
      eachArg((w) => readHost(w, 'ping')),
    ),
  ],
  ['ping_group', kept(2, many, 'a group name and one or more hosts')],
  [
    'respawn',
    kept(2, many, 'USER PROGRAM [ARGS…]', 'line', (d) => readAbsolutePath(arg(d, 1), 'the respawn program')),
  ],
  ['use_logd', kept(1, 1, 'yes or no', 'list', (d) => readBoolean(arg(d, 0), 'use_logd'))],
  ['logfacility', kept(1, 1, 'a syslog facility', 'list', oneOf([...syslogFacilities], 'logfacility'))],
  ['debug', kept(1, 1, 'a debug level', 'list', (d) => readInteger(arg(d, 0), 'debug', 0, 255))],
  ['compression', kept(1, 1, 'a compression module name', 'list')],
  [
    'compression_threshold',
    kept(1, 1, 'a size in KiB', 'list', (d) => readInteger(arg(d, 0), 'compression_threshold', 0, 65536)),
  ],
  [
    'traditional_compression',
    kept(1, 1, 'yes or no', 'list', (d) => readBoolean(arg(d, 0), 'traditional_compression')),
  ],
  ['hopfudge', kept(1, 1, 'a hop count', 'list', (d) => readInteger(arg(d, 0), 'hopfudge', 0, 255))],
  [
    'baud',
    kept(
      1,
      1,
      'a baud rate',
      'list',
      oneOf(['9600', '19200', '38400', '57600', '115200', '230400', '460800'], 'baud'),
    ),
  ],
  ['serial', kept(1, many, 'one or more serial devices', 'list')],
  ['watchdog', kept(1, 1, 'a watchdog device', 'list', (d) => readAbsolutePath(arg(d, 0), 'watchdog'))],
  ['realtime', kept(1, 1, 'yes or no', 'list', (d) => readBoolean(arg(d, 0), 'realtime'))],
  ['rtprio', kept(1, 1, 'a realtime priority', 'list', (d) => readInteger(arg(d, 0), 'rtprio', 1, 99))],
  ['coredumps', kept(1, 1, 'yes or no', 'list', (d) => readBoolean(arg(d, 0), 'coredumps'))],
  ['coreroot', kept(1, 1, 'a directory', 'list', (d) => readAbsolutePath(arg(d, 0), 'coreroot'))],
  ['msgfmt', kept(1, 1, 'classic or netstring', 'list', oneOf(['classic', 'netstring'], 'msgfmt'))],
  [
    'conn_logd_time',
    kept(1, 1, 'seconds', 'list', (d) => readInteger(arg(d, 0), 'conn_logd_time', 0, 86400)),
  ],
  [
    'max_rexmit_delay',
    kept(1, 1, 'milliseconds', 'list', (d) => readInteger(arg(d, 0), 'max_rexmit_delay', 0, 86_400_000)),
  ],
  ['uuidfrom', kept(1, 1, 'file or nodename', 'list', oneOf(['file', 'nodename'], 'uuidfrom'))],
  ['use_apphbd', kept(1, 1, 'yes or no', 'list', (d) => readBoolean(arg(d, 0), 'use_apphbd'))],
  [
    'memreserve',
    kept(1, 1, 'a number of KiB', 'list', (d) => readInteger(arg(d, 0), 'memreserve', 0, 1 << 30)),
  ],
  ['env', kept(1, many, 'NAME=VALUE')],
  ['apiauth', kept(2, many, 'an API group and uid=… or gid=… lists')],
  ['stonith', kept(2, many, 'a STONITH device type and its configuration file')],
  ['stonith_host', kept(3, many, 'a host, a STONITH device type and its parameters')],
  ['mcast6', kept(5, 5, 'INTERFACE GROUP PORT HOPS LOOP')],
];
