// The first product on a backend, run when the backend becomes active instead of in the program's first call.

import { onBackendActive } from '../backend/index.js';
import { noGrad } from './autograd.js';
import { Tensor } from './tensor.js';

/**
 * 128 x 128: large enough to take the multi-threaded, packed GEMM path and the aligned storage path of a real
 * product (a smaller one runs on one thread from V8's heap), small enough to cost ~50 us of compute.
 */
const WARM_SIZE = 128;

onBackendActive(() => {
  const x = new Tensor(new Float32Array(WARM_SIZE * WARM_SIZE), [WARM_SIZE, WARM_SIZE]);
  noGrad(() => x.matmul(x));
});
