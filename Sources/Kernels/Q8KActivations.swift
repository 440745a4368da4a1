import CKernels

// Products of K-quant weights (Q4_K, Q6_K) with activations quantised to Q8_K, as ggml's x86
// CPU backend computes them: Q4_K through the AVX2 repacked `q4_K_8x8` kernels (gemv and gemm
// in ggml-cpu/arch/x86/repack.cpp), Q6_K through `ggml_vec_dot_q6_K_q8_K` (arch/x86/quants.c).
// Both reduce each 256-element super-block to exact integers first; only the per-super-block
// scaling and accumulation are floating point, and those are reproduced operation for operation:
// - Q4_K: per output, acc = fma(float(Σ sc·q4·q8), d_w·d_a, acc) and accMin = fma(float(Σ m·bsum),
//   dmin_w·d_a, accMin) over the super-blocks, result acc − accMin;
// - Q6_K: per output, 8 lanes, lane k accumulating the elements 4k…4k+3 of every 32-element
//   chunk (scaled) minus 32·(sc·bsum) of sub-blocks 2k, 2k+1, as fma(d_a·d_w, float(lane), acc);
//   then ggml's horizontal sum.
// Quantising to Q8_K: d = 1/iscale, q = round-half-even(iscale·x) with iscale = ±127/amax. ggml's
// reference picks the sign of iscale from the largest-magnitude element and its 4-row AVX2
// quantiser from whether +amax occurs; both give the same products (q and d change sign
// together, and round-half-even is symmetric), so one rule serves both.

/// Activations of `tokens` rows of `columns` values (a multiple of 256) in ggml's Q8_K blocks.
public struct Q8KActivations: Sendable {
    public let tokens: Int
    public let columns: Int
    /// round(iscale · x) per value, token-major, in element order.
    public internal(set) var q: [Int8]
    /// Per 256-element block: the scale 1/iscale.
    public internal(set) var d: [Float]
    /// Per 16 elements: Σ q.
    public internal(set) var bsums: [Int32]

    /// Quantises `tokens` rows of `columns` values (a multiple of 256) at `x` (`ckv_quantize_q8k`),
    /// the blocks split across up to `threads` workers.
    public init(_ x: UnsafePointer<Float>, tokens: Int, columns: Int, threads: Int = 1) {
        precondition(columns % 256 == 0, "\(columns) columns are not a multiple of 256")
        self.tokens = tokens
        self.columns = columns
        let blocks = tokens * columns / 256
        q = [Int8](repeating: 0, count: tokens * columns)
        d = [Float](repeating: 0, count: blocks)
        bsums = [Int32](repeating: 0, count: blocks * 16)
        q.withUnsafeMutableBufferPointer { qp in
            d.withUnsafeMutableBufferPointer { dp in
                bsums.withUnsafeMutableBufferPointer { sp in
                    nonisolated(unsafe) let xb = x, qb = qp.baseAddress!, db = dp.baseAddress!, sb = sp.baseAddress!
                    forRanges(of: blocks, threads: threads, minimum: 8) { r in
                        ckv_quantize_q8k(xb + 256 * r.lowerBound, r.count, qb + 256 * r.lowerBound, db + r.lowerBound, sb + 16 * r.lowerBound)
                    }
                }
            }
        }
    }
}

extension GGMLType {
    /// True for the K-quant types whose products ggml computes against Q8_K activations
    /// (handled by `QuantizedMatrix.multiplyQ8K`).
    public var multipliesQ8KActivations: Bool { self == .q4_K || self == .q6_K }
}

extension QuantizedMatrix {
    /// Y[t] = W · X[t] for K-quant weights with the activations quantised to Q8_K first (ggml's
    /// numerics for these types); rows split across `threads` workers, each row decoded once per
    /// batch, products in C (`ckv_q8k_products`).
    func multiplyQ8K(_ x: UnsafePointer<Float>, tokens: Int, into y: UnsafeMutablePointer<Float>, threads: Int) {
        let a = Q8KActivations(x, tokens: tokens, columns: columns, threads: threads)
        nonisolated(unsafe) let yp = y
        let matrix = self
        a.q.withUnsafeBufferPointer { qb in
            a.d.withUnsafeBufferPointer { db in
                a.bsums.withUnsafeBufferPointer { sb in
                    nonisolated(unsafe) let aq = qb.baseAddress!, ad = db.baseAddress!, asum = sb.baseAddress!
                    matrix.forRowRanges(threads: threads) { rows in
                        ckv_q8k_products(Int32(matrix.type.rawValue), matrix.data, matrix.rowBytes, Int32(matrix.columns / 256), Int32(rows.lowerBound), Int32(rows.upperBound),
                                         aq, ad, asum, Int32(tokens), yp, matrix.rows)
                    }
                }
            }
        }
    }
}
