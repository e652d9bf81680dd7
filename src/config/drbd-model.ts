// Typed model of a DRBD configuration: what the files declare (Decl types, per
// section, before inheritance) and what holds for a resource once `common`,
// resource, volume and host settings are combined (Resolved types).
import type { OptionSection, OptionSpec, OptionValue } from './drbd-options.js';
import type { ConfigWarning, SourcePos } from './errors.js';

/** One option as written: `resync-rate 40M;` is value 40960 (KiB/s), text '40M'. */
export interface OptionEntry {
  readonly spec: OptionSpec;
  readonly value: OptionValue;
  /** The value as written (joined with spaces for several words), for `dump`. */
  readonly text: string;
  readonly pos: SourcePos;
}

export type OptionMap = ReadonlyMap<string, OptionEntry>;
export type SectionMaps = ReadonlyMap<OptionSection, OptionMap>;

export type AddressFamily = 'ipv4' | 'ipv6' | 'ssocks' | 'sdp';

export interface Address {
  readonly family: AddressFamily;
  /** The IP address, without brackets for IPv6. */
  readonly host: string;
  readonly port: number;
  readonly pos: SourcePos;
}

export interface DeviceDecl {
  /** `/dev/drbdN`; when only `minor N` is given this is derived as DRBD does. */
  readonly path: string;
  readonly minor: number;
  /** Whether `minor` was written (drbdadm prints `minor N` always). */
  readonly pos: SourcePos;
}

export type MetaDisk =
  | { readonly kind: 'internal' }
  /** External: `index` set for DRBD's fixed 128 MiB slots, undefined for flexible. */
  | { readonly kind: 'external'; readonly path: string; readonly index: number | undefined };

export interface VolumeDecl {
  readonly number: number;
  readonly device: DeviceDecl | undefined;
  /** A backing disk path, or 'none' for a diskless volume. */
  readonly disk: { readonly path: string; readonly pos: SourcePos } | undefined;
  readonly metaDisk: { readonly value: MetaDisk; readonly pos: SourcePos } | undefined;
  /** A volume may carry its own `disk { }` options. */
  readonly diskOptions: OptionMap;
  readonly pos: SourcePos;
}

export interface HostDecl {
  /** `on NAME [NAME...]`; for `floating` the address text. */
  readonly names: readonly string[];
  readonly floating: boolean;
  readonly address: Address | undefined;
  readonly nodeId: number | undefined;
  readonly volumes: ReadonlyMap<number, VolumeDecl>;
  readonly pos: SourcePos;
}

export interface ResourceDecl {
  readonly name: string;
  readonly pos: SourcePos;
  readonly hosts: readonly HostDecl[];
  /** Volumes (and the implicit volume 0) declared at resource level, inherited by every host. */
  readonly volumes: ReadonlyMap<number, VolumeDecl>;
  readonly sections: SectionMaps;
  readonly stackedOn: { readonly resource: string; readonly pos: SourcePos } | undefined;
}

export interface DrbdConfig {
  /** Every file read, the main one first, then includes in the order read. */
  readonly files: readonly string[];
  readonly global: OptionMap;
  readonly common: SectionMaps;
  readonly resources: readonly ResourceDecl[];
  readonly warnings: readonly ConfigWarning[];
}

export interface ResolvedVolume {
  readonly number: number;
  readonly device: DeviceDecl;
  readonly disk: string;
  readonly metaDisk: MetaDisk;
  /** Volume-level `disk { }` options on top of the resource's (only those set at volume level). */
  readonly diskOptions: OptionMap;
}

export interface ResolvedHost {
  readonly names: readonly string[];
  readonly floating: boolean;
  readonly address: Address;
  readonly nodeId: number | undefined;
  readonly volumes: readonly ResolvedVolume[];
  readonly pos: SourcePos;
}

export interface ResolvedResource {
  readonly name: string;
  readonly pos: SourcePos;
  readonly hosts: readonly ResolvedHost[];
  /** Effective options: `common` overlaid by the resource, per section. */
  readonly sections: SectionMaps;
  readonly protocol: 'A' | 'B' | 'C';
  readonly stackedOn: string | undefined;
}

export interface ResolvedConfig {
  readonly files: readonly string[];
  readonly global: OptionMap;
  readonly resources: readonly ResolvedResource[];
  readonly warnings: readonly ConfigWarning[];
}
