/* Vectorised row helpers shared by the fused kernels (vmath.c). */
#ifndef KILN_VMATH_H
#define KILN_VMATH_H
#include <stddef.h>
/* max of x[0..n) ignoring NaN (-inf for an empty or all-NaN row) */
float kiln_row_max(const float *x, size_t n);
/* out[i] = exp(x[i] - shift) when out is not NULL; returns the sum of those values */
float kiln_exp_sum(const float *x, float shift, float *out, size_t n);
/* Vectorised exp, sigmoid, silu, gelu_tanh (forward), or the backward (dx = dy * f'(x)) of the last three, over a
 * prefix of [0, n); returns how many elements it wrote (0 when the op or the ISA has no vector path). */
size_t kiln_vunary(int op, int bwd, const float *x, const float *dy, float *out, size_t n);
#endif
