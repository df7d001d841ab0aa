// Loads the C addon built from native/ by `npm install` and wraps it as a Backend.
// Until the addon exists this reports it as unavailable, and Kiln runs on the reference backend.

import type { Backend } from '../backend.js';

export interface NativeInfo { isa: string; threads: number }
export interface NativeLoad { backend?: Backend; info?: NativeInfo; error?: string }

export function loadNativeBackend(): NativeLoad {
  return { error: 'the native addon is not part of this build yet' };
}
