// Products of 32-element block weights (Q4_0, Q4_1, Q5_0, Q8_0) with activations quantised the
// way ggml's CPU backend does before it multiplies (`vec_dot_type`): the activations become
// Q8_0 blocks (Q8_1 for Q4_1 weights), and each block's product is an exact integer sum scaled
// by the two block scales (`ggml_vec_dot_q4_1_q8_1` and friends, ggml-cpu/arch/x86/quants.c).
// Quantising the activations is what makes the results agree with llama.cpp: an f32 product
// differs from it by the activation rounding (~0.2 logit on SmolLM2), enough to flip near-tied
// greedy choices.

/// Activations of `tokens` rows of `columns` values in ggml's Q8_0 / Q8_1 block format, with the
/// 8-bit values held as (integer-valued) floats so the products run in float SIMD exactly.
public struct Q8Activations: Sendable {
    public let tokens: Int
    public let columns: Int
    /// round(x · 127 / amax) per value, token-major, in ggml's lane order within each block:
    /// position 8k + l holds element 4l + k, so lane l of the four 8-wide products sums the
    /// elements 4l…4l+3, as `_mm256_maddubs_epi16` + `_mm256_madd_epi16` do.
    public internal(set) var q: [Float]
    /// Per block: the scale amax / 127 rounded to binary16 (Q8_0's and Q8_1's `d`).
    public internal(set) var d: [Float]
    /// Per block: (amax / 127) · Σq rounded to binary16 (Q8_1's `s`).
    public internal(set) var s: [Float]

    /// Quantises `tokens` rows of `columns` values (a multiple of 32) at `x`, as ggml's AVX2
    /// `quantize_row_q8_1`: d = amax/127, q = round-half-even(x · 127/amax).
    public init(_ x: UnsafePointer<Float>, tokens: Int, columns: Int) {
        precondition(columns % 32 == 0, "\(columns) columns are not a multiple of 32")
        self.tokens = tokens
        self.columns = columns
        let blocks = tokens * columns / 32
        q = [Float](repeating: 0, count: tokens * columns)
        d = [Float](repeating: 0, count: blocks)
        s = [Float](repeating: 0, count: blocks)
        q.withUnsafeMutableBufferPointer { qp in
            for b in 0..<blocks {
                let src = x + 32 * b
                var amax: Float = 0
                for j in 0..<32 { amax = max(amax, abs(src[j])) }
                let scale = amax / 127
                let inverse: Float = amax != 0 ? 127 / amax : 0
                var sum: Float = 0
                for j in 0..<32 {
                    let v = (src[j] * inverse).rounded(.toNearestOrEven)
                    qp[32 * b + 8 * (j % 4) + j / 4] = v
                    sum += v
                }
                d[b] = Float(Float16(scale))
                s[b] = Float(Float16(scale * sum))
            }
        }
    }
}

extension GGMLType {
    /// True for the weight types whose products ggml computes against 8-bit activations in
    /// 32-element blocks (handled by `QuantizedMatrix.dot(row:_:token:)`).
    public var multipliesQ8Activations: Bool {
        switch self {
        case .q4_0, .q4_1, .q5_0, .q8_0: true
        default: false
        }
    }
}

extension QuantizedMatrix {
    /// One block's integers (Q4_0: q − 8, Q4_1: q, Q5_0: q − 16, Q8_0: q) as four 8-lane
    /// vectors in ggml's lane order: vector k, lane l holds element 4l + k.
    @inline(__always)
    func blockLanes(_ src: UnsafeRawPointer) -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
        @inline(__always) func lanes(_ make: (UInt32) -> SIMD8<Int32>) -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
            (SIMD8<Float>(make(0)), SIMD8<Float>(make(1)), SIMD8<Float>(make(2)), SIMD8<Float>(make(3)))
        }
        switch type {
        case .q4_0, .q4_1:
            // Bytes 4m + k of the 16 nibble bytes, as the k-th byte of word m: the low nibbles are
            // elements 0…15, the high ones 16…31.
            let words = (src + (type == .q4_0 ? 2 : 4)).loadUnaligned(as: SIMD4<UInt32>.self)
            let bias: Int32 = type == .q4_0 ? 8 : 0
            return lanes { k in
                let bytes = (words &>> (8 * k)) & 0xFF
                let v = SIMD8<UInt32>(lowHalf: bytes & 0xF, highHalf: bytes &>> 4)
                return SIMD8<Int32>(truncatingIfNeeded: v) &- bias
            }
        case .q5_0:
            let qh = SIMD8<UInt32>(repeating: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: 2, as: UInt32.self)))
            let words = (src + 6).loadUnaligned(as: SIMD4<UInt32>.self)
            let bit = SIMD8<UInt32>(0, 4, 8, 12, 16, 20, 24, 28) // element 4l + k takes bit 4l + k of qh
            return lanes { k in
                let bytes = (words &>> (8 * k)) & 0xFF
                let nibbles = SIMD8<UInt32>(lowHalf: bytes & 0xF, highHalf: bytes &>> 4)
                let high = ((qh &>> (bit &+ k)) & 1) &<< 4
                return SIMD8<Int32>(truncatingIfNeeded: nibbles | high) &- 16
            }
        case .q8_0:
            let words = (src + 2).loadUnaligned(as: SIMD8<UInt32>.self)
            return lanes { k in SIMD8<Int32>(truncatingIfNeeded: words &<< (24 - 8 * k)) &>> 24 }
        default:
            preconditionFailure("\(type.name) does not multiply Q8 activations")
        }
    }

    /// Row `r`'s block integers in `blockLanes` order into `ints`, and per block the scale `d`
    /// and (Q4_1) the offset `m`.
    @inline(__always)
    func blockIntegers(row r: Int, into ints: UnsafeMutablePointer<Float>, scales: UnsafeMutablePointer<Float>, mins: UnsafeMutablePointer<Float>) {
        var src = data + r * rowBytes
        let out = UnsafeMutableRawPointer(ints)
        for b in 0..<(columns / 32) {
            scales[b] = half(src, 0)
            mins[b] = type == .q4_1 ? half(src, 2) : 0
            let (w0, w1, w2, w3) = blockLanes(src)
            out.storeBytes(of: w0, toByteOffset: 128 * b, as: SIMD8<Float>.self)
            out.storeBytes(of: w1, toByteOffset: 128 * b + 32, as: SIMD8<Float>.self)
            out.storeBytes(of: w2, toByteOffset: 128 * b + 64, as: SIMD8<Float>.self)
            out.storeBytes(of: w3, toByteOffset: 128 * b + 96, as: SIMD8<Float>.self)
            src += type.blockBytes
        }
    }

    /// Row `r`'s product with token `t` of `a`, straight from the quantised row (decode).
    @inline(__always)
    func dotQ8(row r: Int, _ a: Q8Activations, q aq: UnsafePointer<Float>, token t: Int) -> Float {
        let blocks = columns / 32
        var src = data + r * rowBytes
        var x = aq + t * columns
        var acc = SIMD8<Float>()
        var offset: Float = 0
        let hasMins = type == .q4_1
        for b in 0..<blocks {
            let (w0, w1, w2, w3) = blockLanes(src)
            var p = w0 * load8(x)
            p = fma(w1, load8(x + 8), p)
            p = fma(w2, load8(x + 16), p)
            p = fma(w3, load8(x + 24), p)
            let ab = t * blocks + b
            acc = fma(SIMD8(repeating: half(src, 0) * a.d[ab]), p, acc)
            if hasMins { offset += half(src, 2) * a.s[ab] }
            src += type.blockBytes
            x += 32
        }
        return ggmlSum(acc) + offset
    }

    /// Σ over blocks of (d_w · d_a) · Σ q_w q_a (+ m_w · s_a for Q4_1): row `r`'s product with
    /// token `t` of `a`, as ggml's `vec_dot_*_q8_0` / `_q8_1`. The integer sums are exact in
    /// float (|Σ| < 2²⁴); `ints`, `scales`, `mins` are `blockIntegers`' output for row `r`.
    @inline(__always)
    func dot(ints: UnsafePointer<Float>, scales: UnsafePointer<Float>, mins: UnsafePointer<Float>, _ a: Q8Activations,
             q aq: UnsafePointer<Float>, token t: Int) -> Float {
        let blocks = columns / 32
        let qa = aq + t * columns
        var acc = SIMD8<Float>()
        var offset: Float = 0
        let hasMins = type == .q4_1
        for b in 0..<blocks {
            let w = ints + 32 * b, x = qa + 32 * b
            var p = load8(w) * load8(x)
            p = fma(load8(w + 8), load8(x + 8), p)
            p = fma(load8(w + 16), load8(x + 16), p)
            p = fma(load8(w + 24), load8(x + 24), p)
            let ab = t * blocks + b
            acc = fma(SIMD8(repeating: scales[b] * a.d[ab]), p, acc)
            if hasMins { offset += mins[b] * a.s[ab] }
        }
        return ggmlSum(acc) + offset
    }

    /// y = W x with `x` quantised to Q8 blocks first (ggml's numerics for these types).
    func multiplyQ8(_ x: UnsafePointer<Float>, tokens: Int, into y: UnsafeMutablePointer<Float>, threads: Int) {
        let a = Q8Activations(x, tokens: tokens, columns: columns)
        nonisolated(unsafe) let yp = y
        let matrix = self
        let workers = max(1, min(threads, rows / 16))
        let chunk = (rows + workers - 1) / workers
        a.q.withUnsafeBufferPointer { qp in
            nonisolated(unsafe) let aq = qp.baseAddress!
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                let blocks = matrix.columns / 32
                let ints = UnsafeMutablePointer<Float>.allocate(capacity: matrix.columns)
                let scales = UnsafeMutablePointer<Float>.allocate(capacity: blocks)
                let mins = UnsafeMutablePointer<Float>.allocate(capacity: blocks)
                defer { ints.deallocate(); scales.deallocate(); mins.deallocate() }
                for r in (w * chunk)..<min(matrix.rows, (w + 1) * chunk) {
                    if tokens == 1 {
                        yp[r] = matrix.dotQ8(row: r, a, q: aq, token: 0)
                        continue
                    }
                    matrix.blockIntegers(row: r, into: ints, scales: scales, mins: mins)
                    for t in 0..<tokens {
                        yp[t * matrix.rows + r] = matrix.dot(ints: ints, scales: scales, mins: mins, a, q: aq, token: t)
                    }
                }
            }
        }
    }
}

@inline(__always)
private func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}


import Dispatch
