// Activation quantisation as ggml's CPU backend does it before a block product: Q8_0/Q8_1 blocks
// of 32 (`quantize_row_q8_1`) and Q8_K blocks of 256 (`quantize_row_q8_K`). The maxima and the
// integer sums are order-free, the roundings are the same ones, so both paths give the same bytes.
#include "kernels_common.h"

static void q8_block_portable(const float *x, int8_t *q, float *d, float *s) {
    float amax = 0;
    for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
    const float scale = amax / 127.f, inverse = amax != 0 ? 127.f / amax : 0.f;
    int32_t sum = 0;
    for (int j = 0; j < 32; j++) {
        const int32_t v = (int32_t)nearbyintf(x[j] * inverse);
        q[j] = (int8_t)v;
        sum += v;
    }
    *d = ckv_half_value(ckv_half_bits(scale));
    *s = ckv_half_value(ckv_half_bits(scale * (float)sum));
}

static void q8k_block_portable(const float *x, int8_t *q, float *d, int32_t *bsums) {
    float amax = 0;
    for (int j = 0; j < 256; j++) amax = fmaxf(amax, fabsf(x[j]));
    memset(bsums, 0, 16 * sizeof(int32_t));
    if (amax == 0) {
        memset(q, 0, 256);
        *d = 0;
        return;
    }
    const float iscale = 127.f / amax;
    *d = 1 / iscale;
    for (int j = 0; j < 256; j++) {
        const int32_t v = (int32_t)nearbyintf(iscale * x[j]);
        q[j] = (int8_t)v;
        bsums[j / 16] += v;
    }
}

#ifdef CKV_AVX2
static inline float max_abs(const float *x, int n) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_setzero_ps();
    for (int j = 0; j < n; j += 8) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    return _mm_cvtss_f32(_mm_max_ss(h, _mm_movehdup_ps(h)));
}

/// 32 values times `factor`, rounded half to even, stored as bytes at q; the integers of the first
/// 16 values and of the last 16 go to `first16` and `last16`, added lane-wise (the totals of the
/// lanes are each half's sum).
static inline void round32(const float *x, float factor, int8_t *q, __m256i *first16, __m256i *last16) {
    const __m256 f = _mm256_set1_ps(factor);
    __m256i i[4];
    for (int k = 0; k < 4; k++)
        i[k] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * k), f), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    // packs interleave the 128-bit halves: restore element order with one permutation.
    const __m256i packed = _mm256_packs_epi16(_mm256_packs_epi32(i[0], i[1]), _mm256_packs_epi32(i[2], i[3]));
    _mm256_storeu_si256((__m256i *)q, _mm256_permutevar8x32_epi32(packed, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
    *first16 = _mm256_add_epi32(i[0], i[1]);
    *last16 = _mm256_add_epi32(i[2], i[3]);
}

#endif

void ckv_quantize_q8(const float *x, size_t blocks, int8_t *q, float *d, float *s) {
    for (size_t b = 0; b < blocks; b++) {
#ifdef CKV_AVX2
        const float amax = max_abs(x + 32 * b, 32);
        const float scale = amax / 127.f, inverse = amax != 0 ? 127.f / amax : 0.f;
        __m256i first16, last16;
        round32(x + 32 * b, inverse, q + 32 * b, &first16, &last16);
        const int32_t sum = ckv_int_total(_mm256_add_epi32(first16, last16));
        d[b] = ckv_half_value(ckv_half_bits(scale));
        s[b] = ckv_half_value(ckv_half_bits(scale * (float)sum));
#else
        q8_block_portable(x + 32 * b, q + 32 * b, d + b, s + b);
#endif
    }
}

void ckv_quantize_q8k(const float *x, size_t blocks, int8_t *q, float *d, int32_t *bsums) {
    for (size_t b = 0; b < blocks; b++) {
#ifdef CKV_AVX2
        const float *xb = x + 256 * b;
        const float amax = max_abs(xb, 256);
        if (amax == 0) {
            q8k_block_portable(xb, q + 256 * b, d + b, bsums + 16 * b);
            continue;
        }
        const float iscale = 127.f / amax;
        d[b] = 1 / iscale;
        for (int c = 0; c < 8; c++) {
            __m256i first16, last16;
            round32(xb + 32 * c, iscale, q + 256 * b + 32 * c, &first16, &last16);
            bsums[16 * b + 2 * c] = ckv_int_total(first16);
            bsums[16 * b + 2 * c + 1] = ckv_int_total(last16);
        }
#else
        q8k_block_portable(x + 256 * b, q + 256 * b, d + b, bsums + 16 * b);
#endif
    }
}

void ckv_quantize_q8_portable(const float *x, size_t blocks, int8_t *q, float *d, float *s) {
    for (size_t b = 0; b < blocks; b++) q8_block_portable(x + 32 * b, q + 32 * b, d + b, s + b);
}

void ckv_quantize_q8k_portable(const float *x, size_t blocks, int8_t *q, float *d, int32_t *bsums) {
    for (size_t b = 0; b < blocks; b++) q8k_block_portable(x + 256 * b, q + 256 * b, d + b, bsums + 16 * b);
}
