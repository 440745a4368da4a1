// What both kernel files need: the vector instructions when the build targets them, exact float
// operations, and binary16 conversion.
#ifndef CKV_KERNELS_COMMON_H
#define CKV_KERNELS_COMMON_H

#include "CKernels.h"

#include <math.h>
#include <stdlib.h>
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

/// binary16 bits `h` as a float, exactly.
static inline float ckv_half_value(uint16_t h) {
#if defined(__F16C__)
    return _cvtsh_ss(h);
#else
    const uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exponent = (h >> 10) & 0x1F, mantissa = h & 0x3FF, bits;
    if (exponent == 0x1F) {
        bits = sign | 0x7F800000u | (mantissa << 13);
    } else if (exponent != 0) {
        bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
    } else if (mantissa == 0) {
        bits = sign;
    } else { // subnormal: normalise
        exponent = 113;
        while (!(mantissa & 0x400)) { mantissa <<= 1; exponent--; }
        bits = sign | (exponent << 23) | ((mantissa & 0x3FF) << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
#endif
}

/// `v` rounded to binary16 (nearest, ties to even), as bits; NaN becomes the quiet NaN 0x7E00.
/// F. Giesen's "float_to_half_fast3_rtne": rebias the exponent with one add that also rounds;
/// subnormal results come from adding 0.5 and reading the low bits.
static inline uint16_t ckv_half_bits(float v) {
    uint32_t x;
    memcpy(&x, &v, 4);
    const uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    const uint32_t a = x & 0x7FFFFFFFu;
    if (a >= 0x47800000u) return sign | (a > 0x7F800000u ? 0x7E00 : 0x7C00); // ≥ 65536, ∞, NaN
    if (a < 0x38800000u) {                                                  // below 2⁻¹⁴
        float f;
        memcpy(&f, &a, 4);
        f += 0.5f;
        uint32_t b;
        memcpy(&b, &f, 4);
        return sign | (uint16_t)(b - 0x3F000000u);
    }
    return sign | (uint16_t)((a + 0xC8000FFFu + ((a >> 13) & 1)) >> 13);
}

/// ggml's 8-lane horizontal sum of a float array: ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)).
static inline float ckv_lanes_total_portable(const float l[8]) {
    return ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]));
}

/// `GGML_F32x8_REDUCE` of four 8-lane accumulators: x = (s0+s2)+(s1+s3) per lane, t = x_l + x_{l+4},
/// then (t0+t1)+(t2+t3).
static inline float ckv_reduce4_portable(const float s[4][8]) {
    float t[4];
    for (int l = 0; l < 4; l++) {
        const float lo = (s[0][l] + s[2][l]) + (s[1][l] + s[3][l]);
        const float hi = (s[0][l + 4] + s[2][l + 4]) + (s[1][l + 4] + s[3][l + 4]);
        t[l] = lo + hi;
    }
    return (t[0] + t[1]) + (t[2] + t[3]);
}

#ifdef CKV_AVX2
/// `ckv_lanes_total_portable` of a register.
static inline float ckv_lanes_total(__m256 v) {
    const __m128 a = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1)); // l + l+4
    const __m128 b = _mm_add_ps(a, _mm_movehl_ps(a, a));                                 // (0+2), (1+3)
    return _mm_cvtss_f32(_mm_add_ss(b, _mm_movehdup_ps(b)));
}

/// The sum of a register's eight 32-bit integers.
static inline int32_t ckv_int_total(__m256i v) {
    __m128i a = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    a = _mm_add_epi32(a, _mm_shuffle_epi32(a, 0x4E));
    a = _mm_add_epi32(a, _mm_shuffle_epi32(a, 0xB1));
    return _mm_cvtsi128_si32(a);
}

/// `ckv_reduce4_portable` of four registers.
static inline float ckv_reduce4(__m256 s0, __m256 s1, __m256 s2, __m256 s3) {
    const __m256 x = _mm256_add_ps(_mm256_add_ps(s0, s2), _mm256_add_ps(s1, s3));
    const __m128 t = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    const __m128 h = _mm_hadd_ps(t, t); // t0+t1, t2+t3
    return _mm_cvtss_f32(_mm_hadd_ps(h, h));
}
#endif

#endif
