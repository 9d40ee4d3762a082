// Loads the native addon and exposes its typed API. The addon's surface is described in one place,
// native/index.d.ts; this module only finds the compiled file, registers BpfError with it, and
// re-exports. The addon is located by walking up from this file to the directory holding
// native/build/Release/, so the same code works from agent/ (tsx, vitest) and from dist/agent/.

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as Native from '../../native/index.js';
import { BpfError } from './errors.js';

const ADDON_PATH = join('native', 'build', 'Release', 'tenet_native.node');

const BUILD_HINT =
  'Build it with scripts/setup (or `npm run build:native`), or point TENET_NATIVE_ADDON at it.';

function findAddon(): string {
  const override = process.env.TENET_NATIVE_ADDON;
  if (override) {
    if (!existsSync(override)) {
      throw new Error(
        `tenet native addon not found at TENET_NATIVE_ADDON=${override}. ${BUILD_HINT}`,
      );
    }
    return override;
  }
  const start = dirname(fileURLToPath(import.meta.url));
  for (let dir = start; ; ) {
    const candidate = join(dir, ADDON_PATH);
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  throw new Error(
    `tenet native addon not found: no ${ADDON_PATH} in ${start} or any parent directory. ${BUILD_HINT}`,
  );
}

const require = createRequire(import.meta.url);

/** The raw addon, typed by native/index.d.ts. */
export const native = require(findAddon()) as typeof Native;
native.setErrorClass(BpfError);

export const {
  BpfObject,
  BpfMap,
  BpfProgram,
  BpfLink,
  RingBuffer,
  libbpfVersion,
  numPossibleCpus,
  liveHandles,
  ifNameToIndex,
  xdpAttach,
  xdpDetach,
  xdpQuery,
  xdpLinkAttach,
  tcAttach,
  tcDetach,
  tcQuery,
  tcHookDestroy,
  tcxLinkAttach,
} = native;

export type BpfObject = Native.BpfObject;
export type BpfMap = Native.BpfMap;
export type BpfProgram = Native.BpfProgram;
export type BpfLink = Native.BpfLink;
export type RingBuffer = Native.RingBuffer;

export type {
  BpfErrorInit,
  LinkInfo,
  LookupBatchOptions,
  LookupBatchResult,
  MapCreateOptions,
  MapInfo,
  ObjectOpenOptions,
  ProgramInfo,
  Target,
  TcAttachOptions,
  TcAttachResult,
  TcDirection,
  TcFilterId,
  TestRunOptions,
  TestRunResult,
  XdpAttachOptions,
  XdpDetachOptions,
  XdpMode,
  XdpQueryResult,
} from '../../native/index.js';
