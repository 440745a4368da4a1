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
