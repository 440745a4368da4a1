// Attention over a binary16 KV cache, in the orders llama.cpp's CPU backend computes it: a
// batch's products as tinyBLAS (one 8-lane fused accumulator per output), one token's as
// `ggml_vec_dot_f16` (four accumulators over 32-element steps). The query heads of a GQA group
// share every key and value load; each output keeps its own accumulators, so sharing changes
// no result. Keys are stored slot-major (d values per slot); values transposed (one row of
// cells per dimension), as llama.cpp stores V for its non-flash attention.
#include "kernels_common.h"

/// Query heads per register tile (12 accumulators at most, of AVX2's 16 registers).
#define MAX_HEADS 3

// ---- Portable code: the same products, accumulations and sums, one value at a time.

static float score_portable(int order, const float *q, const uint16_t *k, int d) {
    if (order == CKV_ORDER_GEMM) {
        float acc[8] = {0};
        for (int i = 0; i < d; i += 8)
            for (int m = 0; m < 8; m++) acc[m] = fmaf(ckv_half_value(k[i + m]), q[i + m], acc[m]);
        return ckv_lanes_total_portable(acc);
    }
    float s[4][8] = {{0}};
    int i = 0;
    for (; i + 32 <= d; i += 32)
        for (int a = 0; a < 4; a++)
            for (int m = 0; m < 8; m++) s[a][m] = fmaf(ckv_half_value(k[i + 8 * a + m]), q[i + 8 * a + m], s[a][m]);
    double sum = ckv_reduce4_portable(s);
    for (; i < d; i++) sum += (double)(ckv_half_value(k[i]) * q[i]);
    return (float)sum;
}

void ckv_attention_scores_portable(int order, const float *q, int heads, size_t q_stride, const uint16_t *k, int d,
                                   int first, int end, float scale, float *scores, size_t scores_stride) {
    for (int h = 0; h < heads; h++)
        for (int j = first; j < end; j++)
            scores[h * scores_stride + j] = score_portable(order, q + h * q_stride, k + (size_t)j * d, d) * scale;
}

void ckv_attention_values_portable(int order, const float *w, int heads, size_t w_stride, const uint16_t *vt,
                                   size_t vt_stride, int d, int begin, int end, float *out, size_t out_stride) {
    for (int h = 0; h < heads; h++) {
        const float *wh = w + h * w_stride;
        for (int e = 0; e < d; e++) {
            const uint16_t *row = vt + (size_t)e * vt_stride;
            if (order == CKV_ORDER_GEMM) {
                float acc[8] = {0};
                for (int c = begin; c < end; c += 8)
                    for (int m = 0; m < 8; m++) acc[m] = fmaf(ckv_half_value(row[c + m]), wh[c + m], acc[m]);
                out[h * out_stride + e] = ckv_lanes_total_portable(acc);
            } else {
                float s[4][8] = {{0}};
                for (int c = begin; c < end; c += 32)
                    for (int a = 0; a < 4; a++)
                        for (int m = 0; m < 8; m++)
                            s[a][m] = fmaf(ckv_half_value(row[c + 8 * a + m]), wh[c + 8 * a + m], s[a][m]);
                out[h * out_stride + e] = ckv_reduce4_portable(s);
            }
        }
    }
}

static void round_to_half_portable(const float *x, float *y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = ckv_half_value(ckv_half_bits(x[i]));
}

#ifdef CKV_AVX2
// ---- AVX2 + F16C: register tiles of `nh` heads × `nk` keys (or `nr` value rows). Called with
// constant tile sizes so the compiler unrolls the tile loops and keeps the accumulators in
// registers.

static inline __m256 load_halves(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }

__attribute__((always_inline))
static inline void scores_gemm_tile(int nh, int nk, const float *q, size_t qs, const uint16_t *k, int d, int j,
                                    float scale, float *s, size_t ss) {
    __m256 acc[MAX_HEADS][4];
    for (int h = 0; h < nh; h++)
        for (int n = 0; n < nk; n++) acc[h][n] = _mm256_setzero_ps();
    for (int i = 0; i < d; i += 8) {
        for (int n = 0; n < nk; n++) {
            const __m256 kv = load_halves(k + (size_t)(j + n) * d + i);
            for (int h = 0; h < nh; h++) acc[h][n] = _mm256_fmadd_ps(kv, _mm256_loadu_ps(q + h * qs + i), acc[h][n]);
        }
    }
    for (int h = 0; h < nh; h++)
        for (int n = 0; n < nk; n++) s[h * ss + j + n] = ckv_lanes_total(acc[h][n]) * scale;
}

__attribute__((always_inline))
static inline void scores_f16_tile(int nh, int nk, const float *q, size_t qs, const uint16_t *k, int d, int j,
                                   float scale, float *s, size_t ss) {
    __m256 acc[MAX_HEADS][2][4];
    for (int h = 0; h < nh; h++)
        for (int n = 0; n < nk; n++)
            for (int a = 0; a < 4; a++) acc[h][n][a] = _mm256_setzero_ps();
    int i = 0;
    for (; i + 32 <= d; i += 32) {
        for (int n = 0; n < nk; n++) {
            for (int a = 0; a < 4; a++) {
                const __m256 kv = load_halves(k + (size_t)(j + n) * d + i + 8 * a);
                for (int h = 0; h < nh; h++)
                    acc[h][n][a] = _mm256_fmadd_ps(kv, _mm256_loadu_ps(q + h * qs + i + 8 * a), acc[h][n][a]);
            }
        }
    }
    for (int h = 0; h < nh; h++) {
        for (int n = 0; n < nk; n++) {
            double sum = ckv_reduce4(acc[h][n][0], acc[h][n][1], acc[h][n][2], acc[h][n][3]);
            const uint16_t *kr = k + (size_t)(j + n) * d;
            for (int t = i; t < d; t++) sum += (double)(ckv_half_value(kr[t]) * q[h * qs + t]);
            s[h * ss + j + n] = (float)sum * scale;
        }
    }
}

/// Scores of `nh` heads against keys [first, end): tiles of `nk` keys, then single keys.
#define SCORES_FOR(tile, nh, nk)                                                   \
    do {                                                                           \
        int j = first;                                                             \
        for (; j + (nk) <= end; j += (nk)) tile(nh, nk, q, q_stride, k, d, j, scale, s, scores_stride); \
        for (; j < end; j++) tile(nh, 1, q, q_stride, k, d, j, scale, s, scores_stride); \
    } while (0)

static void scores_heads(int order, int nh, const float *q, size_t q_stride, const uint16_t *k, int d, int first,
                         int end, float scale, float *s, size_t scores_stride) {
    if (order == CKV_ORDER_GEMM) {
        switch (nh) {
        case 1: SCORES_FOR(scores_gemm_tile, 1, 4); break;
        case 2: SCORES_FOR(scores_gemm_tile, 2, 4); break;
        default: SCORES_FOR(scores_gemm_tile, 3, 4); break;
        }
    } else {
        switch (nh) {
        case 1: SCORES_FOR(scores_f16_tile, 1, 2); break;
        case 2: SCORES_FOR(scores_f16_tile, 2, 1); break;
        default: SCORES_FOR(scores_f16_tile, 3, 1); break;
        }
    }
}

__attribute__((always_inline))
static inline void values_gemm_tile(int nh, int nr, const float *w, size_t ws, const uint16_t *vt, size_t vs, int e0,
                                    int begin, int end, float *out, size_t os) {
    __m256 acc[MAX_HEADS][8];
    for (int h = 0; h < nh; h++)
        for (int r = 0; r < nr; r++) acc[h][r] = _mm256_setzero_ps();
    for (int c = begin; c < end; c += 8) {
        __m256 wv[MAX_HEADS];
        for (int h = 0; h < nh; h++) wv[h] = _mm256_loadu_ps(w + h * ws + c);
        for (int r = 0; r < nr; r++) {
            const __m256 vv = load_halves(vt + (size_t)(e0 + r) * vs + c);
            for (int h = 0; h < nh; h++) acc[h][r] = _mm256_fmadd_ps(vv, wv[h], acc[h][r]);
        }
    }
    for (int h = 0; h < nh; h++)
        for (int r = 0; r < nr; r++) out[h * os + e0 + r] = ckv_lanes_total(acc[h][r]);
}

__attribute__((always_inline))
static inline void values_f16_tile(int nh, int nr, const float *w, size_t ws, const uint16_t *vt, size_t vs, int e0,
                                   int begin, int end, float *out, size_t os) {
    __m256 acc[MAX_HEADS][2][4];
    for (int h = 0; h < nh; h++)
        for (int r = 0; r < nr; r++)
            for (int a = 0; a < 4; a++) acc[h][r][a] = _mm256_setzero_ps();
    for (int c = begin; c < end; c += 32) {
        for (int r = 0; r < nr; r++) {
            for (int a = 0; a < 4; a++) {
                const __m256 vv = load_halves(vt + (size_t)(e0 + r) * vs + c + 8 * a);
                for (int h = 0; h < nh; h++)
                    acc[h][r][a] = _mm256_fmadd_ps(vv, _mm256_loadu_ps(w + h * ws + c + 8 * a), acc[h][r][a]);
            }
        }
    }
    for (int h = 0; h < nh; h++)
        for (int r = 0; r < nr; r++) out[h * os + e0 + r] = ckv_reduce4(acc[h][r][0], acc[h][r][1], acc[h][r][2], acc[h][r][3]);
}

/// Value rows [0, d) in tiles of `nr` rows (d is a multiple of 8, so of `nr`).
#define VALUES_FOR(tile, nh, nr)                                                               \
    do {                                                                                       \
        for (int e0 = 0; e0 < d; e0 += (nr)) tile(nh, nr, w, w_stride, vt, vt_stride, e0, begin, end, out, out_stride); \
    } while (0)

static void values_heads(int order, int nh, const float *w, size_t w_stride, const uint16_t *vt, size_t vt_stride,
                         int d, int begin, int end, float *out, size_t out_stride) {
    if (order == CKV_ORDER_GEMM) {
        switch (nh) {
        case 1: VALUES_FOR(values_gemm_tile, 1, 8); break;
        case 2: VALUES_FOR(values_gemm_tile, 2, 4); break;
        default: VALUES_FOR(values_gemm_tile, 3, 4); break;
        }
    } else {
        switch (nh) {
        case 1: VALUES_FOR(values_f16_tile, 1, 2); break;
        case 2: VALUES_FOR(values_f16_tile, 2, 1); break;
        default: VALUES_FOR(values_f16_tile, 3, 1); break;
        }
    }
}
#endif

void ckv_attention_scores(int order, const float *q, int heads, size_t q_stride, const uint16_t *k, int d, int first,
                          int end, float scale, float *scores, size_t scores_stride) {
#ifdef CKV_AVX2
    if (d % 8 == 0) {
        for (int h = 0; h < heads; h += MAX_HEADS) {
            const int nh = heads - h < MAX_HEADS ? heads - h : MAX_HEADS;
            scores_heads(order, nh, q + h * q_stride, q_stride, k, d, first, end, scale, scores + h * scores_stride,
                         scores_stride);
        }
        return;
    }
#endif
    ckv_attention_scores_portable(order, q, heads, q_stride, k, d, first, end, scale, scores, scores_stride);
}

void ckv_attention_values(int order, const float *w, int heads, size_t w_stride, const uint16_t *vt, size_t vt_stride,
                          int d, int begin, int end, float *out, size_t out_stride) {
#ifdef CKV_AVX2
    if (d % 8 == 0) {
        for (int h = 0; h < heads; h += MAX_HEADS) {
            const int nh = heads - h < MAX_HEADS ? heads - h : MAX_HEADS;
            values_heads(order, nh, w + h * w_stride, w_stride, vt, vt_stride, d, begin, end, out + h * out_stride,
                         out_stride);
        }
        return;
    }
#endif
    ckv_attention_values_portable(order, w, heads, w_stride, vt, vt_stride, d, begin, end, out, out_stride);
}

void ckv_round_to_half(const float *x, float *y, size_t n) {
    size_t i = 0;
#ifdef CKV_AVX2
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT)));
#endif
    round_to_half_portable(x + i, y + i, n - i);
}

void ckv_attention_weights(float *p, int first, int end, float inv, float *w, int begin, int w_end) {
    for (int j = begin; j < first; j++) w[j] = 0;
    for (int j = first; j < end; j++) p[j] = p[j] * inv;
    ckv_round_to_half(p + first, w + first, (size_t)(end - first));
    for (int j = end; j < w_end; j++) w[j] = 0;
}
