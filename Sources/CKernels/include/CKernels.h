#ifndef CKV_KERNELS_H
#define CKV_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/// Weight types of `ckv_q8_products`, numbered as ggml numbers them.
enum ckv_block_type { CKV_Q4_0 = 2, CKV_Q4_1 = 3, CKV_Q5_0 = 6, CKV_Q8_0 = 8, CKV_Q4_K = 12, CKV_Q6_K = 14 };

/// y[t·y_stride + r] = row r of a matrix of 32-element blocks (Q4_0, Q4_1, Q5_0, Q8_0) times
/// token t's activations in Q8_0 / Q8_1 form, for rows [row_begin, row_end) and tokens
/// [0, tokens), with ggml's x86 numerics: per block an exact integer sum in each of 8 lanes
/// (lane l: elements 4l … 4l+3), accumulated per lane by one fused multiply-add with
/// d_w·d_a, the lanes summed as ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)), and for Q4_1 the
/// offsets Σ m_w·s_a (a multiply and an add per block) added last.
///
/// - Parameters:
///   - rows: the first byte of row 0; rows are `row_bytes` apart, `blocks` blocks each.
///   - q: the activations' 8-bit values, token-major (`blocks`·32 per token), natural order.
///   - d, s: per token and block, the activation scale and (Q4_1) d·Σq, as floats.
void ckv_q8_products(int type, const void *rows, size_t row_bytes, int blocks, int row_begin, int row_end,
                     const int8_t *q, const float *d, const float *s, int tokens, float *y, size_t y_stride);

/// y[t·y_stride + r] = row r of a Q4_K or Q6_K matrix times token t's Q8_K activations, for rows
/// [row_begin, row_end), in the order of the ggml x86 kernel llama.cpp uses for that type and
/// batch size: Q4_K's repacked gemm for the first ⌊tokens/4⌋·4 tokens (scaled per pair of
/// sub-blocks) and gemv for the rest (per super-block); Q6_K's vec_dot under 8 tokens (8 float
/// lanes, ggml's horizontal sum), its tiled matmul from 8 (one scalar per super-block).
///
/// - Parameters:
///   - q: the activations' 8-bit values, token-major (`blocks`·256 per token), element order.
///   - d: per token and super-block, the activation scale.
///   - bsums: per token and 16 elements, Σ q.
void ckv_q8k_products(int type, const void *rows, size_t row_bytes, int blocks, int row_begin, int row_end,
                      const int8_t *q, const float *d, const int32_t *bsums, int tokens, float *y, size_t y_stride);

/// `ckv_q8k_products` by the portable code (the vector build's tests compare the two).
void ckv_q8k_products_portable(int type, const void *rows, size_t row_bytes, int blocks, int row_begin, int row_end,
                               const int8_t *q, const float *d, const int32_t *bsums, int tokens, float *y, size_t y_stride);

/// The summation orders of llama.cpp's attention products: a batch's as tinyBLAS computes an
/// f16 matrix product (one 8-lane fused accumulator per output over the inner dimension, then
/// ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7))), one token's as `ggml_vec_dot_f16` (four 8-lane
/// accumulators over 32-element steps, reduced as `GGML_F32x8_REDUCE`, elements past the last
/// whole step added in double).
enum ckv_attention_order { CKV_ORDER_GEMM = 0, CKV_ORDER_VEC_DOT_F16 = 1 };

/// scores[h·scores_stride + j] = (q_h · k_j) · scale for the `heads` queries q_h = q + h·q_stride
/// and the keys j in [first, end), key j being the `d` binary16 values at k + j·d. Queries are
/// floats that are already binary16 values.
void ckv_attention_scores(int order, const float *q, int heads, size_t q_stride, const uint16_t *k, int d,
                          int first, int end, float scale, float *scores, size_t scores_stride);

/// out[h·out_stride + e] = Σ_c w[h·w_stride + c] · vt[e·vt_stride + c] over the cells c in
/// [begin, end) for e < d: the weighted sum of the values, stored transposed (one row of
/// binary16 cells per dimension). `begin` and `end − begin` are multiples of 8 (gemm order) or
/// 32 (vec_dot order); accumulator lanes follow the cell index from 0, weights outside the
/// attended cells must be 0.
void ckv_attention_values(int order, const float *w, int heads, size_t w_stride, const uint16_t *vt,
                          size_t vt_stride, int d, int begin, int end, float *out, size_t out_stride);

/// The two attention products by the portable code (the vector build's tests compare them).
void ckv_attention_scores_portable(int order, const float *q, int heads, size_t q_stride, const uint16_t *k, int d,
                                   int first, int end, float scale, float *scores, size_t scores_stride);
void ckv_attention_values_portable(int order, const float *w, int heads, size_t w_stride, const uint16_t *vt,
                                   size_t vt_stride, int d, int begin, int end, float *out, size_t out_stride);

/// y[i] = x[i] rounded to binary16 (nearest, ties to even) and back, for i < n.
void ckv_round_to_half(const float *x, float *y, size_t n);

/// Normalises softmax numerators p[first..<end] by `inv` in place and writes them rounded to
/// binary16 into w (llama.cpp converts the weights to f16 for the value product), with zeros in
/// w[begin..<first] and w[end..<w_end].
void ckv_attention_weights(float *p, int first, int end, float inv, float *w, int begin, int w_end);

/// Quantises `blocks` blocks of 32 floats as ggml's `quantize_row_q8_1` (Q8_0's bytes and d
/// too): d = amax/127 and s = d·Σq rounded to binary16 (returned as floats), q = x·127/amax
/// rounded half to even.
void ckv_quantize_q8(const float *x, size_t blocks, int8_t *q, float *d, float *s);

/// Quantises `blocks` blocks of 256 floats as ggml's `quantize_row_q8_K`: d = 1/(127/amax),
/// q = (127/amax)·x rounded half to even, Σq per 16 values; an all-zero block stays zero.
void ckv_quantize_q8k(const float *x, size_t blocks, int8_t *q, float *d, int32_t *bsums);

/// The two quantisations by the portable code (the vector build's tests compare them).
void ckv_quantize_q8_portable(const float *x, size_t blocks, int8_t *q, float *d, float *s);
void ckv_quantize_q8k_portable(const float *x, size_t blocks, int8_t *q, float *d, int32_t *bsums);

/// A spin-wait hint to the CPU (`pause` on x86, `yield` on ARM).
static inline void ckv_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/// One row's product by the portable code (the vector build's tests compare the two).
float ckv_q8_dot_portable(int type, const void *row, int blocks, const int8_t *q, const float *d, const float *s);

#endif
