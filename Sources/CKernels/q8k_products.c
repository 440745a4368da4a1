// Products of K-quant weights (Q4_K, Q6_K) with Q8_K activations in the order of the ggml x86
// kernels llama.cpp runs (see Sources/Kernels/Q8KActivations.swift for which and why). Each
// super-block reduces to exact integers; the float operations below are ggml's, one for one.
#include "kernels_common.h"

enum { Q4K_BYTES = 144, Q6K_BYTES = 210 };

/// One row decoded for a batch: per super-block 256 unsigned weight values in element order,
/// the sub-block scales (Q4_K 8, Q6_K 16), the integers multiplying the activation sums
/// (Q4_K's 8 mins; Q6_K's 16 scales), d and dmin.
typedef struct {
    uint8_t *w;
    int16_t *scales;
    int32_t *mins;
    float *d, *dmin;
} kquant_row;

static void decode_row(int type, const uint8_t *src, int blocks, kquant_row *row) {
    for (int b = 0; b < blocks; b++) {
        uint8_t *w = row->w + 256 * b;
        if (type == CKV_Q4_K) {
            const uint8_t *q = src + 4;
            row->d[b] = ckv_half_to_float(src);
            row->dmin[b] = ckv_half_to_float(src + 2);
            for (int j = 0; j < 8; j++) {
                int sc, m;
                if (j < 4) {
                    sc = q[j] & 63;
                    m = q[j + 4] & 63;
                } else {
                    sc = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
                    m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
                }
                row->scales[8 * b + j] = (int16_t)sc;
                row->mins[8 * b + j] = m;
            }
            for (int g = 0; g < 4; g++) {
                const uint8_t *qs = src + 16 + 32 * g;
#ifdef CKV_AVX2
                const __m256i m4 = _mm256_set1_epi8(0x0F), v = _mm256_loadu_si256((const __m256i *)qs);
                _mm256_storeu_si256((__m256i *)(w + 64 * g), _mm256_and_si256(v, m4));
                _mm256_storeu_si256((__m256i *)(w + 64 * g + 32), _mm256_and_si256(_mm256_srli_epi16(v, 4), m4));
#else
                for (int i = 0; i < 32; i++) {
                    w[64 * g + i] = qs[i] & 0x0F;
                    w[64 * g + 32 + i] = qs[i] >> 4;
                }
#endif
            }
            src += Q4K_BYTES;
        } else {
            const uint8_t *ql = src, *qh = src + 128;
            const int8_t *sc = (const int8_t *)(src + 192);
            row->d[b] = ckv_half_to_float(src + 208);
            for (int k = 0; k < 16; k++) {
                row->scales[16 * b + k] = sc[k];
                row->mins[16 * b + k] = sc[k];
            }
            for (int j = 0; j < 2; j++) {
                const uint8_t *l = ql + 64 * j, *h = qh + 32 * j;
                uint8_t *o = w + 128 * j;
#ifdef CKV_AVX2
                const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x30);
                const __m256i l0 = _mm256_loadu_si256((const __m256i *)l), l1 = _mm256_loadu_si256((const __m256i *)(l + 32));
                const __m256i hv = _mm256_loadu_si256((const __m256i *)h);
                _mm256_storeu_si256((__m256i *)o, _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_and_si256(_mm256_slli_epi16(hv, 4), m2)));
                _mm256_storeu_si256((__m256i *)(o + 32), _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_and_si256(_mm256_slli_epi16(hv, 2), m2)));
                _mm256_storeu_si256((__m256i *)(o + 64), _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(hv, m2)));
                _mm256_storeu_si256((__m256i *)(o + 96), _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4), _mm256_and_si256(_mm256_srli_epi16(hv, 2), m2)));
                continue;
#endif
                for (int i = 0; i < 32; i++) {
                    o[i] = (l[i] & 0x0F) | (((h[i] >> 0) & 3) << 4);
                    o[32 + i] = (l[32 + i] & 0x0F) | (((h[i] >> 2) & 3) << 4);
                    o[64 + i] = (l[i] >> 4) | (((h[i] >> 4) & 3) << 4);
                    o[96 + i] = (l[32 + i] >> 4) | (((h[i] >> 6) & 3) << 4);
                }
            }
            src += Q6K_BYTES;
        }
    }
}

/// Per lane l (of 8), Σ over the 32 elements of a chunk with element e in lane e/4: scale(l) ·
/// w[e]·x[e], scale(l) = `lo` for lanes 0 … 3 and `hi` for 4 … 7.
static inline void chunk_lanes(const uint8_t *w, const int8_t *x, int lo, int hi, int32_t lanes[8]) {
    for (int l = 0; l < 8; l++) {
        int32_t s = 0;
        for (int k = 0; k < 4; k++) s += (int32_t)w[4 * l + k] * (int32_t)x[4 * l + k];
        lanes[l] = (l < 4 ? lo : hi) * s;
    }
}

#ifdef CKV_AVX2
static inline __m256i chunk_vector(const uint8_t *w, const int8_t *x, int lo, int hi) {
    const __m256i pairs = _mm256_maddubs_epi16(_mm256_loadu_si256((const __m256i *)w), _mm256_loadu_si256((const __m256i *)x));
    return _mm256_madd_epi16(pairs, _mm256_set_m128i(_mm_set1_epi16((short)hi), _mm_set1_epi16((short)lo)));
}

#endif

/// Row · one token (Q4_K): `pairwise` scales and accumulates per pair of sub-blocks (ggml's
/// q4_K_8x8 gemm), else per super-block (its gemv).
static inline __attribute__((always_inline))
float dot_q4k(const kquant_row *row, int blocks, const int8_t *q, const float *ad, const int32_t *bsums, int pairwise, int vector) {
    float acc = 0, acc_min = 0;
    for (int b = 0; b < blocks; b++) {
        const float dd = row->d[b] * ad[b], ddmin = row->dmin[b] * ad[b];
        int32_t total = 0, total_min = 0;
#ifdef CKV_AVX2
        if (vector && !pairwise) {
            __m256i sum = _mm256_setzero_si256();
            for (int g = 0; g < 4; g++) {
                const uint8_t *w = row->w + 256 * b + 64 * g;
                const int8_t *x = q + 256 * b + 64 * g;
                const int sc0 = row->scales[8 * b + 2 * g], sc1 = row->scales[8 * b + 2 * g + 1];
                sum = _mm256_add_epi32(sum, _mm256_add_epi32(chunk_vector(w, x, sc0, sc0), chunk_vector(w + 32, x + 32, sc1, sc1)));
                const int32_t *s = bsums + 16 * b + 4 * g;
                total_min += row->mins[8 * b + 2 * g] * (s[0] + s[1]) + row->mins[8 * b + 2 * g + 1] * (s[2] + s[3]);
            }
            acc = fmaf((float)ckv_int_total(sum), dd, acc);
            acc_min = fmaf((float)total_min, ddmin, acc_min);
            continue;
        }
#endif
        for (int g = 0; g < 4; g++) {
            const uint8_t *w = row->w + 256 * b + 64 * g;
            const int8_t *x = q + 256 * b + 64 * g;
            const int sc0 = row->scales[8 * b + 2 * g], sc1 = row->scales[8 * b + 2 * g + 1];
            int32_t v = 0;
#ifdef CKV_AVX2
            if (vector) v = ckv_int_total(_mm256_add_epi32(chunk_vector(w, x, sc0, sc0), chunk_vector(w + 32, x + 32, sc1, sc1)));
#endif
            if (!vector) {
                int32_t l0[8], l1[8];
                chunk_lanes(w, x, sc0, sc0, l0);
                chunk_lanes(w + 32, x + 32, sc1, sc1, l1);
                for (int l = 0; l < 8; l++) v += l0[l] + l1[l];
            }
            const int32_t *s = bsums + 16 * b + 4 * g;
            const int32_t m = row->mins[8 * b + 2 * g] * (s[0] + s[1]) + row->mins[8 * b + 2 * g + 1] * (s[2] + s[3]);
            if (pairwise) {
                acc = fmaf((float)v, dd, acc);
                acc_min = fmaf((float)m, ddmin, acc_min);
            } else {
                total += v;
                total_min += m;
            }
        }
        if (!pairwise) {
            acc = fmaf((float)total, dd, acc);
            acc_min = fmaf((float)total_min, ddmin, acc_min);
        }
    }
    return acc - acc_min;
}

/// Row · one token (Q6_K): 8 integer lanes per super-block, less 32·(sc·bsum) of sub-blocks 2l and
/// 2l+1 in lane l; `tiled` (ggml's tiled K-quant matmul) scales their sum, else ggml_vec_dot_q6_K_q8_K
/// accumulates the lanes and sums them at the end.
static inline __attribute__((always_inline))
float dot_q6k(const kquant_row *row, int blocks, const int8_t *q, const float *ad, const int32_t *bsums, int tiled, int vector) {
    float acc[8] = {0};
    float tiled_acc = 0;
    for (int b = 0; b < blocks; b++) {
        int32_t lanes[8] = {0}, chunk[8];
        const int16_t *sc = row->scales + 16 * b;
#ifdef CKV_AVX2
        if (vector) {
            __m256i sum = _mm256_setzero_si256();
            for (int c = 0; c < 8; c++) {
                sum = _mm256_add_epi32(sum, chunk_vector(row->w + 256 * b + 32 * c, q + 256 * b + 32 * c, sc[2 * c], sc[2 * c + 1]));
            }
            _mm256_storeu_si256((__m256i *)lanes, sum);
        }
#endif
        if (!vector) {
            for (int c = 0; c < 8; c++) {
                chunk_lanes(row->w + 256 * b + 32 * c, q + 256 * b + 32 * c, sc[2 * c], sc[2 * c + 1], chunk);
                for (int l = 0; l < 8; l++) lanes[l] += chunk[l];
            }
        }
        const int32_t *s = bsums + 16 * b;
        const int32_t *f = row->mins + 16 * b;
        for (int l = 0; l < 8; l++) lanes[l] -= (f[2 * l] * s[2 * l] + f[2 * l + 1] * s[2 * l + 1]) * 32;
        if (tiled) {
            int32_t total = 0;
            for (int l = 0; l < 8; l++) total += lanes[l];
            tiled_acc = fmaf(row->d[b] * (float)total, ad[b], tiled_acc);
        } else {
            const float scale = ad[b] * row->d[b];
            for (int l = 0; l < 8; l++) acc[l] = fmaf(scale, (float)lanes[l], acc[l]);
        }
    }
    if (tiled) return tiled_acc;
    return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
}

#ifdef CKV_AVX2
/// The totals of four 8-lane integer vectors (integer sums: every order gives the same).
static inline __m128i totals4(__m256i a, __m256i b, __m256i c, __m256i d) {
    const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d)); // per half: a, b, c, d
    return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

/// `dot_q4k` (pairwise) for four tokens `columns` apart: the same integers, and each token's float
/// operations in its own lane of one 4-lane multiply and fused multiply-add.
static void dot_q4k_x4(const kquant_row *row, int blocks, const int8_t *q, size_t columns, const float *ad,
                       const int32_t *bsums, float *y, size_t y_stride) {
    __m128 acc = _mm_setzero_ps(), acc_min = _mm_setzero_ps();
    for (int b = 0; b < blocks; b++) {
        const __m128 adv = _mm_set_ps(ad[3 * blocks + b], ad[2 * blocks + b], ad[blocks + b], ad[b]);
        const __m128 dd = _mm_mul_ps(_mm_set1_ps(row->d[b]), adv), ddmin = _mm_mul_ps(_mm_set1_ps(row->dmin[b]), adv);
        for (int g = 0; g < 4; g++) {
            const uint8_t *w = row->w + 256 * b + 64 * g;
            const int sc0 = row->scales[8 * b + 2 * g], sc1 = row->scales[8 * b + 2 * g + 1];
            const int m0 = row->mins[8 * b + 2 * g], m1 = row->mins[8 * b + 2 * g + 1];
            __m256i sums[4];
            int32_t m[4];
            for (int t = 0; t < 4; t++) {
                const int8_t *x = q + t * columns + 256 * b + 64 * g;
                sums[t] = _mm256_add_epi32(chunk_vector(w, x, sc0, sc0), chunk_vector(w + 32, x + 32, sc1, sc1));
                const int32_t *s = bsums + (size_t)t * 16 * blocks + 16 * b + 4 * g;
                m[t] = m0 * (s[0] + s[1]) + m1 * (s[2] + s[3]);
            }
            const __m128 v = _mm_cvtepi32_ps(totals4(sums[0], sums[1], sums[2], sums[3]));
            acc = _mm_fmadd_ps(v, dd, acc);
            acc_min = _mm_fmadd_ps(_mm_cvtepi32_ps(_mm_setr_epi32(m[0], m[1], m[2], m[3])), ddmin, acc_min);
        }
    }
    float out[4];
    _mm_storeu_ps(out, _mm_sub_ps(acc, acc_min));
    for (int t = 0; t < 4; t++) y[t * y_stride] = out[t];
}

/// `dot_q6k` (tiled) for four tokens `columns` apart, each token's float operations in its lane.
static void dot_q6k_tiled_x4(const kquant_row *row, int blocks, const int8_t *q, size_t columns, const float *ad,
                             const int32_t *bsums, float *y, size_t y_stride) {
    __m128 acc = _mm_setzero_ps();
    for (int b = 0; b < blocks; b++) {
        const int16_t *sc = row->scales + 16 * b;
        const int32_t *f = row->mins + 16 * b;
        __m256i sums[4];
        int32_t m[4];
        for (int t = 0; t < 4; t++) {
            const int8_t *x = q + t * columns + 256 * b;
            __m256i sum = _mm256_setzero_si256();
            for (int c = 0; c < 8; c++) sum = _mm256_add_epi32(sum, chunk_vector(row->w + 256 * b + 32 * c, x + 32 * c, sc[2 * c], sc[2 * c + 1]));
            sums[t] = sum;
            const int32_t *s = bsums + (size_t)t * 16 * blocks + 16 * b;
            int32_t mins = 0;
            for (int k = 0; k < 16; k++) mins += f[k] * s[k];
            m[t] = mins * 32;
        }
        const __m128i total = _mm_sub_epi32(totals4(sums[0], sums[1], sums[2], sums[3]), _mm_setr_epi32(m[0], m[1], m[2], m[3]));
        const __m128 adv = _mm_set_ps(ad[3 * blocks + b], ad[2 * blocks + b], ad[blocks + b], ad[b]);
        acc = _mm_fmadd_ps(_mm_mul_ps(_mm_set1_ps(row->d[b]), _mm_cvtepi32_ps(total)), adv, acc);
    }
    float out[4];
    _mm_storeu_ps(out, acc);
    for (int t = 0; t < 4; t++) y[t * y_stride] = out[t];
}
#endif

static inline __attribute__((always_inline))
void products(int type, const void *rows, size_t row_bytes, int blocks, int row_begin, int row_end,
              const int8_t *q, const float *d, const int32_t *bsums, int tokens, float *y, size_t y_stride, int vector) {
    uint8_t w[256 * blocks];
    int16_t scales[16 * blocks];
    int32_t mins[16 * blocks];
    float dw[blocks], dmin[blocks];
    kquant_row row = {w, scales, mins, dw, dmin};
    const size_t columns = (size_t)blocks * 256;
    // Q4_K: ggml's gemm takes the first ⌊T/4⌋·4 tokens, its gemv the rest. Q6_K: tiled from 8 tokens.
    const int grouped = tokens - tokens % 4, tiled = tokens >= 8;
    for (int r = row_begin; r < row_end; r++) {
        decode_row(type, (const uint8_t *)rows + (size_t)r * row_bytes, blocks, &row);
        int t = 0;
#ifdef CKV_AVX2
        // Four tokens at a time where ggml's batched order applies to all four.
        if (vector) {
            const int batched = type == CKV_Q4_K ? grouped : tiled ? tokens - tokens % 4 : 0;
            for (; t < batched; t += 4) {
                const int8_t *qt = q + (size_t)t * columns;
                const float *dt = d + (size_t)t * blocks;
                const int32_t *st = bsums + (size_t)t * 16 * blocks;
                float *yt = y + (size_t)t * y_stride + r;
                if (type == CKV_Q4_K) dot_q4k_x4(&row, blocks, qt, columns, dt, st, yt, y_stride);
                else dot_q6k_tiled_x4(&row, blocks, qt, columns, dt, st, yt, y_stride);
            }
        }
#endif
        for (; t < tokens; t++) {
            const int8_t *qt = q + (size_t)t * columns;
            const float *dt = d + (size_t)t * blocks;
            const int32_t *st = bsums + (size_t)t * 16 * blocks;
            y[(size_t)t * y_stride + r] = type == CKV_Q4_K ? dot_q4k(&row, blocks, qt, dt, st, t < grouped, vector)
                                                          : dot_q6k(&row, blocks, qt, dt, st, tiled, vector);
        }
    }
}

void ckv_q8k_products(int type, const void *rows, size_t row_bytes, int blocks, int row_begin, int row_end,
                      const int8_t *q, const float *d, const int32_t *bsums, int tokens, float *y, size_t y_stride) {
#ifdef CKV_AVX2
    products(type, rows, row_bytes, blocks, row_begin, row_end, q, d, bsums, tokens, y, y_stride, 1);
#else
    products(type, rows, row_bytes, blocks, row_begin, row_end, q, d, bsums, tokens, y, y_stride, 0);
#endif
}

void ckv_q8k_products_portable(int type, const void *rows, size_t row_bytes, int blocks, int row_begin, int row_end,
                               const int8_t *q, const float *d, const int32_t *bsums, int tokens, float *y, size_t y_stride) {
    products(type, rows, row_bytes, blocks, row_begin, row_end, q, d, bsums, tokens, y, y_stride, 0);
}
