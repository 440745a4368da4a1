// Integer block products for the 32-element block types, the engine's hottest loop. Written in C
// because the integer multiply-adds they need (`vpmaddubsw`, `vpmaddwd`) are not reachable from
// Swift's SIMD types; a portable version computes the same integers and the same float
// operations where AVX2 is not available.
#include "kernels_common.h"

static inline float half_to_float(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return ckv_half_value(h);
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

#ifdef CKV_AVX2
/// Per 32-bit lane l, Σ_{k<4} w[4l+k]·a[4l+k] as floats (exact), given |w| (`magnitudes`; w itself
/// for the unsigned Q4_1): maddubs takes an unsigned left operand, so a takes w's signs.
static inline __m256 lane_sums(__m256i magnitudes, __m256i w, __m256i a, int unsigned_w) {
    const __m256i pairs = _mm256_maddubs_epi16(magnitudes, unsigned_w ? a : _mm256_sign_epi8(a, w));
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
}

/// One row times one token, each block unpacked as it is read (the decode path). Called with a
/// constant `type` so the compiler specialises the unpacking.
__attribute__((always_inline))
static inline float q8_dot(int type, const uint8_t *row, int blocks, const int8_t *q, const float *d, const float *s) {
    const int unsigned_w = type == CKV_Q4_1;
    const size_t bb = block_bytes(type);
    __m256 acc = _mm256_setzero_ps();
    float offset = 0;
    for (int b = 0; b < blocks; b++) {
        const uint8_t *src = row + (size_t)b * bb;
        const __m256i w = block_vector(type, src);
        const __m256i a = _mm256_loadu_si256((const __m256i *)(q + 32 * b));
        const __m256i magnitudes = unsigned_w ? w : _mm256_sign_epi8(w, w);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(half_to_float(src) * d[b]), lane_sums(magnitudes, w, a, unsigned_w), acc);
        if (unsigned_w) offset = offset + half_to_float(src + 2) * s[b];
    }
    return ckv_lanes_total(acc) + offset;
}

/// A row's blocks unpacked once for a whole batch: per block its 32 weights, their magnitudes
/// (maddubs takes an unsigned left operand; Q4_1's weights are unsigned already), its scale and
/// (Q4_1) its minimum as floats.
static void unpack_row(int type, const uint8_t *row, int blocks, int8_t *w, int8_t *wabs, float *dw, float *mw) {
    const size_t bb = block_bytes(type);
    for (int b = 0; b < blocks; b++) {
        const uint8_t *src = row + (size_t)b * bb;
        const __m256i v = block_vector(type, src);
        _mm256_storeu_si256((__m256i *)(w + 32 * b), v);
        _mm256_storeu_si256((__m256i *)(wabs + 32 * b), type == CKV_Q4_1 ? v : _mm256_sign_epi8(v, v));
        dw[b] = half_to_float(src);
        mw[b] = type == CKV_Q4_1 ? half_to_float(src + 2) : 0;
    }
}

/// Rows r … r+nr−1 times tokens t … t+nt−1 (a register tile) on unpacked rows (row i's weights
/// at w + i·columns, scales at dw + i·blocks): each token's activations are loaded once for the
/// nr rows; every output keeps its own accumulator, so the tile size changes no result. Called
/// with constant `unsigned_w`, `nr` and `nt` so the compiler specialises each tile.
__attribute__((always_inline))
static inline void q8_tile_unpacked(int unsigned_w, int nr, int nt, const int8_t *w, const int8_t *wabs, const float *dw,
                                    const float *mw, int blocks, const int8_t *qt, size_t columns, const float *dt,
                                    const float *st, float *y, size_t y_stride, int r) {
    __m256 acc[2][4];
    float off[2][4];
    for (int i = 0; i < nr; i++)
        for (int j = 0; j < nt; j++) {
            acc[i][j] = _mm256_setzero_ps();
            off[i][j] = 0;
        }
    for (int b = 0; b < blocks; b++) {
        for (int j = 0; j < nt; j++) {
            const __m256i a = _mm256_loadu_si256((const __m256i *)(qt + (size_t)j * columns + 32 * b));
            const float da = dt[(size_t)j * blocks + b];
            for (int i = 0; i < nr; i++) {
                const __m256i wi = _mm256_loadu_si256((const __m256i *)(w + (size_t)i * columns + 32 * b));
                const __m256i magnitudes = _mm256_loadu_si256((const __m256i *)(wabs + (size_t)i * columns + 32 * b));
                acc[i][j] = _mm256_fmadd_ps(_mm256_set1_ps(dw[i * blocks + b] * da), lane_sums(magnitudes, wi, a, unsigned_w), acc[i][j]);
                if (unsigned_w) off[i][j] = off[i][j] + mw[i * blocks + b] * st[(size_t)j * blocks + b];
            }
        }
    }
    for (int i = 0; i < nr; i++)
        for (int j = 0; j < nt; j++) y[(size_t)j * y_stride + r + i] = ckv_lanes_total(acc[i][j]) + off[i][j];
}

/// The tile of the `nr` unpacked rows from r times tokens t … t+nt−1 (`nr` 1 or 2; `nt` constant).
__attribute__((always_inline))
static inline void q8_tile_at(int unsigned_w, int nr, int nt, int t, const int8_t *w, const int8_t *wabs, const float *dw,
                              const float *mw, int blocks, const int8_t *q, const float *d, const float *s,
                              size_t columns, float *y, size_t y_stride, int r) {
    const int8_t *qt = q + (size_t)t * columns;
    const float *dt = d + (size_t)t * blocks, *st = s + (size_t)t * blocks;
    float *yt = y + (size_t)t * y_stride;
    if (nr == 2) q8_tile_unpacked(unsigned_w, 2, nt, w, wabs, dw, mw, blocks, qt, columns, dt, st, yt, y_stride, r);
    else q8_tile_unpacked(unsigned_w, 1, nt, w, wabs, dw, mw, blocks, qt, columns, dt, st, yt, y_stride, r);
}

/// A batch (4 tokens or more): rows two at a time, each pair unpacked once, then tiles of
/// 2 rows × 4 tokens and the token tail one at a time.
#define Q8_BATCH_FOR(U)                                                                                    \
    do {                                                                                                   \
        for (int r = row_begin; r < row_end; r += 2) {                                                     \
            const int nr = row_end - r >= 2 ? 2 : 1;                                                       \
            for (int i = 0; i < nr; i++)                                                                   \
                unpack_row(type, (const uint8_t *)rows + (size_t)(r + i) * row_bytes, blocks, w + i * columns, \
                           wabs + i * columns, dw + i * blocks, mw + i * blocks);                          \
            int t = 0;                                                                                     \
            for (; t + 4 <= tokens; t += 4)                                                                \
                q8_tile_at(U, nr, 4, t, w, wabs, dw, mw, blocks, q, d, s, columns, y, y_stride, r);        \
            for (; t < tokens; t++)                                                                        \
                q8_tile_at(U, nr, 1, t, w, wabs, dw, mw, blocks, q, d, s, columns, y, y_stride, r);        \
        }                                                                                                  \
    } while (0)

/// Fewer than 4 tokens (decode): each row read once per token, unpacked on the fly.
#define Q8_TOKENS_FOR(T)                                                                                   \
    do {                                                                                                   \
        for (int r = row_begin; r < row_end; r++) {                                                        \
            const uint8_t *row = (const uint8_t *)rows + (size_t)r * row_bytes;                            \
            for (int t = 0; t < tokens; t++)                                                               \
                y[(size_t)t * y_stride + r] = q8_dot(T, row, blocks, q + (size_t)t * columns, d + (size_t)t * blocks, \
                                                     s + (size_t)t * blocks);                                \
        }                                                                                                  \
    } while (0)
#endif

void ckv_q8_products(int type, const void *rows, size_t row_bytes, int blocks, int row_begin, int row_end,
                     const int8_t *q, const float *d, const float *s, int tokens, float *y, size_t y_stride) {
    const size_t columns = (size_t)blocks * 32;
#ifdef CKV_AVX2
    if (tokens >= 4) {
        // Two rows' weights, magnitudes, scales and minima.
        int8_t *w = malloc(4 * columns + 16 * (size_t)blocks);
        if (w) {
            int8_t *wabs = w + 2 * columns;
            float *dw = (float *)(w + 4 * columns), *mw = dw + 2 * blocks;
            if (type == CKV_Q4_1) Q8_BATCH_FOR(1);
            else Q8_BATCH_FOR(0);
            free(w);
            return;
        }
    }
    switch (type) {
    case CKV_Q4_0: Q8_TOKENS_FOR(CKV_Q4_0); break;
    case CKV_Q4_1: Q8_TOKENS_FOR(CKV_Q4_1); break;
    case CKV_Q5_0: Q8_TOKENS_FOR(CKV_Q5_0); break;
    default: Q8_TOKENS_FOR(CKV_Q8_0); break;
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
