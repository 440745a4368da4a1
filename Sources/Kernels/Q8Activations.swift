import CKernels

// Products of 32-element block weights (Q4_0, Q4_1, Q5_0, Q8_0) with activations quantised the
// way ggml's CPU backend does before it multiplies (`vec_dot_type`): the activations become
// Q8_0 blocks (Q8_1 for Q4_1 weights), and each block's product is an exact integer sum scaled
// by the two block scales (`ggml_vec_dot_q4_1_q8_1` and friends, ggml-cpu/arch/x86/quants.c).
// Quantising the activations is what makes the results agree with llama.cpp: an f32 product
// differs from it by the activation rounding (~0.2 logit on SmolLM2), enough to flip near-tied
// greedy choices.

/// Activations of `tokens` rows of `columns` values in ggml's Q8_0 / Q8_1 block format.
public struct Q8Activations: Sendable {
    public let tokens: Int
    public let columns: Int
    /// round(x · 127 / amax) per value, token-major, in element order.
    public internal(set) var q: [Int8]
    /// Per block: the scale amax / 127 rounded to binary16 (Q8_0's and Q8_1's `d`).
    public internal(set) var d: [Float]
    /// Per block: (amax / 127) · Σq rounded to binary16 (Q8_1's `s`).
    public internal(set) var s: [Float]

    /// Quantises `tokens` rows of `columns` values (a multiple of 32) at `x`, as ggml's AVX2
    /// `quantize_row_q8_1`: d = amax/127, q = round-half-even(x · 127/amax) (`ckv_quantize_q8`),
    /// the blocks split across up to `threads` workers.
    public init(_ x: UnsafePointer<Float>, tokens: Int, columns: Int, threads: Int = 1) {
        precondition(columns % 32 == 0, "\(columns) columns are not a multiple of 32")
        self.tokens = tokens
        self.columns = columns
        let blocks = tokens * columns / 32
        q = [Int8](repeating: 0, count: tokens * columns)
        d = [Float](repeating: 0, count: blocks)
        s = [Float](repeating: 0, count: blocks)
        q.withUnsafeMutableBufferPointer { qp in
            d.withUnsafeMutableBufferPointer { dp in
                s.withUnsafeMutableBufferPointer { sp in
                    nonisolated(unsafe) let xb = x, qb = qp.baseAddress!, db = dp.baseAddress!, sb = sp.baseAddress!
                    forRanges(of: blocks, threads: threads, minimum: 64) { r in
                        ckv_quantize_q8(xb + 32 * r.lowerBound, r.count, qb + 32 * r.lowerBound, db + r.lowerBound, sb + r.lowerBound)
                    }
                }
            }
        }
    }
}

extension GGMLType {
    /// True for the weight types whose products ggml computes against 8-bit activations in
    /// 32-element blocks (`QuantizedMatrix.multiplyQ8`).
    public var multipliesQ8Activations: Bool {
        switch self {
        case .q4_0, .q4_1, .q5_0, .q8_0: true
        default: false
        }
    }
}

extension QuantizedMatrix {
    /// Y[t] = W · X[t] with the activations quantised to Q8 blocks first (ggml's numerics for
    /// these types); rows split across `threads` workers, products in C (`ckv_q8_products`:
    /// exact integer block sums, then ggml's float operations in ggml's order).
    func multiplyQ8(_ x: UnsafePointer<Float>, tokens: Int, into y: UnsafeMutablePointer<Float>, threads: Int) {
        let a = Q8Activations(x, tokens: tokens, columns: columns, threads: threads)
        nonisolated(unsafe) let yp = y
        let matrix = self
        a.q.withUnsafeBufferPointer { qb in
            a.d.withUnsafeBufferPointer { db in
                a.s.withUnsafeBufferPointer { sb in
                    nonisolated(unsafe) let aq = qb.baseAddress!, ad = db.baseAddress!, asum = sb.baseAddress!
                    matrix.forRowRanges(threads: threads) { rows in
                        ckv_q8_products(Int32(matrix.type.rawValue), matrix.data, matrix.rowBytes, Int32(matrix.columns / 32), Int32(rows.lowerBound), Int32(rows.upperBound),
                                        aq, ad, asum, Int32(tokens), yp, matrix.rows)
                    }
                }
            }
        }
    }
}
