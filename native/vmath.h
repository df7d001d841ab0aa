/* Vectorised row helpers shared by the fused kernels (vmath.c). */
#ifndef KILN_VMATH_H
#define KILN_VMATH_H
#include <stddef.h>
/* max of x[0..n) ignoring NaN (-inf for an empty or all-NaN row) */
float kiln_row_max(const float *x, size_t n);
/* out[i] = exp(x[i] - shift) when out is not NULL; returns the sum of those values */
float kiln_exp_sum(const float *x, float shift, float *out, size_t n);
#endif
