// Allocation of flat typed arrays per dtype, and dtype checks shared by the ops.

import type { AnyArray, DType, FloatArray } from '../backend/index.js';

export function alloc(dtype: DType, n: number): AnyArray {
  switch (dtype) {
    case 'float32': return new Float32Array(n);
    case 'float64': return new Float64Array(n);
    case 'int32': return new Int32Array(n);
    default: throw new Error(`unknown dtype '${dtype as string}'; expected float32, float64 or int32`);
  }
}

export function allocFloat(dtype: DType, n: number): FloatArray {
  return alloc(dtype, n) as FloatArray;
}

export function dtypeOf(a: AnyArray): DType {
  if (a instanceof Float32Array) return 'float32';
  if (a instanceof Float64Array) return 'float64';
  if (a instanceof Int32Array) return 'int32';
  throw new Error('expected a Float32Array, Float64Array or Int32Array');
}

export function isFloat(dtype: DType): boolean { return dtype === 'float32' || dtype === 'float64'; }

export const DTYPES: readonly DType[] = ['float32', 'float64', 'int32'];

export function checkDType(dtype: unknown, where: string): DType {
  if (dtype === 'float32' || dtype === 'float64' || dtype === 'int32') return dtype;
  throw new Error(`${where}: unknown dtype '${String(dtype)}'; expected float32, float64 or int32`);
}
