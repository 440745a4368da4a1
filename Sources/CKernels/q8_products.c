// Integer block products for the 32-element block types, the engine's hottest loop. Written in C
// because the integer multiply-adds they need (`vpmaddubsw`, `vpmaddwd`) are not reachable from
// Swift's SIMD types; a portable version computes the same integers and the same float
// operations where AVX2 is not available.
#include "kernels_common.h"

static inline float half_to_float(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
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

float ckv_half_to_float(const void *p) { return half_to_float((const uint8_t *)p); }

/// Bytes of the block's integer part (after d, and m for Q4_1).
static inline size_t block_bytes(int type) {
    switch (type) {
    case CKV_Q4_0: return 18;
    case CKV_Q4_1: return 20;
    case CKV_Q5_0: return 22;
    default: return 34; // CKV_Q8_0
    }
}

/// Weight values of one block as 32 signed bytes in element order (Q4_1 unsigned 0 … 15).
static inline void block_values(int type, const uint8_t *b, int8_t out[32]) {
    switch (type) {
    case CKV_Q4_0:
        for (int j = 0; j < 16; j++) {
            out[j] = (int8_t)((b[2 + j] & 0x0F) - 8);
            out[j + 16] = (int8_t)((b[2 + j] >> 4) - 8);
        }
        break;
    case CKV_Q4_1:
        for (int j = 0; j < 16; j++) {
            out[j] = (int8_t)(b[4 + j] & 0x0F);
            out[j + 16] = (int8_t)(b[4 + j] >> 4);
        }
        break;
    case CKV_Q5_0: {
        uint32_t qh;
        memcpy(&qh, b + 2, 4);
        for (int j = 0; j < 16; j++) {
            out[j] = (int8_t)(((b[6 + j] & 0x0F) | (((qh >> j) & 1) << 4)) - 16);
            out[j + 16] = (int8_t)(((b[6 + j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) - 16);
        }
        break;
    }
    default:
        memcpy(out, b + 2, 32);
    }
}

#ifdef CKV_AVX2
/// The 32 weight values of a block in one register (as `block_values`).
static inline __m256i block_vector(int type, const uint8_t *b) {
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    switch (type) {
    case CKV_Q4_0:
    case CKV_Q4_1: {
        const __m128i packed = _mm_loadu_si128((const __m128i *)(b + (type == CKV_Q4_0 ? 2 : 4)));
        // Low nibbles are elements 0 … 15, high nibbles 16 … 31.
        const __m256i both = _mm256_set_m128i(_mm_srli_epi16(packed, 4), packed);
        const __m256i v = _mm256_and_si256(both, low4);
        return type == CKV_Q4_0 ? _mm256_sub_epi8(v, _mm256_set1_epi8(8)) : v;
    }
    case CKV_Q5_0: {
        const __m128i packed = _mm_loadu_si128((const __m128i *)(b + 6));
        const __m256i v = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(packed, 4), packed), low4);
        uint32_t qh;
        memcpy(&qh, b + 2, 4);
        // Byte j takes bit j of qh: spread byte j/8 of qh to byte j, test bit j % 8.
        const __m256i spread = _mm256_shuffle_epi8(_mm256_set1_epi32((int)qh),
            _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0));
        const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
        const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
        const __m256i high = _mm256_and_si256(set, _mm256_set1_epi8(0x10));
        return _mm256_sub_epi8(_mm256_or_si256(v, high), _mm256_set1_epi8(16));
    }
    default:
        return _mm256_loadu_si256((const __m256i *)(b + 2));
    }
}

/// Per 32-bit lane l, Σ_{k<4} w[4l+k]·a[4l+k] as floats (exact); `w` unsigned when `unsigned_w`.
static inline __m256 lane_sums(__m256i w, __m256i a, int unsigned_w) {
    __m256i pairs;
    if (unsigned_w) {
        pairs = _mm256_maddubs_epi16(w, a);
    } else {
        // |w| times a with w's sign: the same products with an unsigned left operand.
        pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(a, w));
    }
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
}

static inline float lanes_total(__m256 v) {
    const __m128 a = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1)); // l + l+4
    const __m128 b = _mm_add_ps(a, _mm_movehl_ps(a, a));                                 // (0+2), (1+3)
    return _mm_cvtss_f32(_mm_add_ss(b, _mm_movehdup_ps(b)));
}
#endif

/// Portable: the same lane sums, accumulations and total.
static float dot_portable(int type, const uint8_t *row, int blocks, const int8_t *q, const float *d, const float *s) {
    float acc[8] = {0};
    float offset = 0;
    int8_t w[32];
    for (int b = 0; b < blocks; b++) {
        const uint8_t *src = row + (size_t)b * block_bytes(type);
        block_values(type, src, w);
        const float scale = half_to_float(src) * d[b];
        for (int l = 0; l < 8; l++) {
            int32_t sum = 0;
            for (int k = 0; k < 4; k++) sum += (int32_t)w[4 * l + k] * (int32_t)q[32 * b + 4 * l + k];
            acc[l] = fmaf(scale, (float)sum, acc[l]);
        }
        if (type == CKV_Q4_1) {
            const float m = half_to_float(src + 2);
            const float product = m * s[b];
            offset = offset + product;
        }
    }
    const float total = ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
    return total + offset;
}

void ckv_q8_products(int type, const void *rows, size_t row_bytes, int blocks, int row_begin, int row_end,
                     const int8_t *q, const float *d, const float *s, int tokens, float *y, size_t y_stride) {
    const size_t bb = block_bytes(type);
    const size_t columns = (size_t)blocks * 32;
#ifdef CKV_AVX2
    const int unsigned_w = type == CKV_Q4_1;
    for (int r = row_begin; r < row_end; r++) {
        const uint8_t *row = (const uint8_t *)rows + (size_t)r * row_bytes;
        int t = 0;
        // Four tokens per pass: each block's weights are unpacked once for the four.
        for (; t + 4 <= tokens; t += 4) {
            __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
            float o0 = 0, o1 = 0, o2 = 0, o3 = 0;
            const int8_t *qt = q + (size_t)t * columns;
            const float *dt = d + (size_t)t * blocks, *st = s + (size_t)t * blocks;
            for (int b = 0; b < blocks; b++) {
                const uint8_t *src = row + (size_t)b * bb;
                const __m256i w = block_vector(type, src);
                const float dw = half_to_float(src);
                const int8_t *qb = qt + 32 * b;
                acc0 = _mm256_fmadd_ps(_mm256_set1_ps(dw * dt[b]), lane_sums(w, _mm256_loadu_si256((const __m256i *)qb), unsigned_w), acc0);
                acc1 = _mm256_fmadd_ps(_mm256_set1_ps(dw * dt[blocks + b]), lane_sums(w, _mm256_loadu_si256((const __m256i *)(qb + columns)), unsigned_w), acc1);
                acc2 = _mm256_fmadd_ps(_mm256_set1_ps(dw * dt[2 * blocks + b]), lane_sums(w, _mm256_loadu_si256((const __m256i *)(qb + 2 * columns)), unsigned_w), acc2);
                acc3 = _mm256_fmadd_ps(_mm256_set1_ps(dw * dt[3 * blocks + b]), lane_sums(w, _mm256_loadu_si256((const __m256i *)(qb + 3 * columns)), unsigned_w), acc3);
                if (unsigned_w) {
                    const float m = half_to_float(src + 2);
                    o0 = o0 + m * st[b];
                    o1 = o1 + m * st[blocks + b];
                    o2 = o2 + m * st[2 * blocks + b];
                    o3 = o3 + m * st[3 * blocks + b];
                }
            }
            y[(size_t)t * y_stride + r] = lanes_total(acc0) + o0;
            y[(size_t)(t + 1) * y_stride + r] = lanes_total(acc1) + o1;
            y[(size_t)(t + 2) * y_stride + r] = lanes_total(acc2) + o2;
            y[(size_t)(t + 3) * y_stride + r] = lanes_total(acc3) + o3;
        }
        for (; t < tokens; t++) {
            __m256 acc = _mm256_setzero_ps();
            float offset = 0;
            const int8_t *qt = q + (size_t)t * columns;
            const float *dt = d + (size_t)t * blocks, *st = s + (size_t)t * blocks;
            for (int b = 0; b < blocks; b++) {
                const uint8_t *src = row + (size_t)b * bb;
                const __m256i w = block_vector(type, src);
                acc = _mm256_fmadd_ps(_mm256_set1_ps(half_to_float(src) * dt[b]),
                                      lane_sums(w, _mm256_loadu_si256((const __m256i *)(qt + 32 * b)), unsigned_w), acc);
                if (unsigned_w) offset = offset + half_to_float(src + 2) * st[b];
            }
            y[(size_t)t * y_stride + r] = lanes_total(acc) + offset;
        }
    }
#else
    for (int r = row_begin; r < row_end; r++) {
        const uint8_t *row = (const uint8_t *)rows + (size_t)r * row_bytes;
        for (int t = 0; t < tokens; t++) {
            y[(size_t)t * y_stride + r] = dot_portable(type, row, blocks, q + (size_t)t * columns, d + (size_t)t * blocks, s + (size_t)t * blocks);
        }
    }
#endif
}

/// The portable path on every build, for tests comparing it with the vector one.
float ckv_q8_dot_portable(int type, const void *row, int blocks, const int8_t *q, const float *d, const float *s) {
    return dot_portable(type, (const uint8_t *)row, blocks, q, d, s);
}
