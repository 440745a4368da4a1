// What both kernel files need: the vector instructions when the build targets them, exact float
// operations, and binary16 conversion.
#ifndef CKV_KERNELS_COMMON_H
#define CKV_KERNELS_COMMON_H

#include "CKernels.h"

#include <math.h>
#include <string.h>

#if defined(__AVX2__) || defined(__F16C__)
#include <immintrin.h>
#endif
#if defined(__AVX2__) && defined(__FMA__)
#define CKV_AVX2 1
#endif

// The float operations must be exactly the ones written: no fused multiply-adds the source does
// not ask for (ggml's are a multiply and an add where it writes them so).
#pragma STDC FP_CONTRACT OFF

/// A binary16 value at `p` as a float, exactly.
float ckv_half_to_float(const void *p);

#endif
