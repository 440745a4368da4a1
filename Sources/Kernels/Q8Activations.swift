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
        switch type {
        case .q4_0, .q4_1:
            // Byte 4m + k of the 16 nibble bytes is byte k of word m; the low nibbles are
            // elements 0…15, the high ones 16…31.
            let words = (src + (type == .q4_0 ? 2 : 4)).loadUnaligned(as: SIMD4<UInt32>.self)
            let bias: Float = type == .q4_0 ? 8 : 0
            @inline(__always) func lane(_ k: UInt32) -> SIMD8<Float> {
                let bytes = (words &>> (8 * k)) & 0xFF
                return exactFloat(SIMD8(lowHalf: bytes & 0xF, highHalf: bytes &>> 4)) - bias
            }
            return (lane(0), lane(1), lane(2), lane(3))
        case .q5_0:
            let qh = SIMD8<UInt32>(repeating: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: 2, as: UInt32.self)))
            let words = (src + 6).loadUnaligned(as: SIMD4<UInt32>.self)
            let bit = SIMD8<UInt32>(0, 4, 8, 12, 16, 20, 24, 28) // element 4l + k takes bit 4l + k of qh
            @inline(__always) func lane(_ k: UInt32) -> SIMD8<Float> {
                let bytes = (words &>> (8 * k)) & 0xFF
                let high = ((qh &>> (bit &+ k)) & 1) &<< 4
                return exactFloat(SIMD8(lowHalf: bytes & 0xF, highHalf: bytes &>> 4) | high) - 16
            }
            return (lane(0), lane(1), lane(2), lane(3))
        case .q8_0:
            let words = (src + 2).loadUnaligned(as: SIMD8<UInt32>.self)
            // Byte b as a signed value: (b ^ 0x80) − 128.
            @inline(__always) func lane(_ k: UInt32) -> SIMD8<Float> { exactFloat(((words &>> (8 * k)) & 0xFF) ^ 0x80) - 128 }
            return (lane(0), lane(1), lane(2), lane(3))
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

    /// Row `r`'s product with one token's activations (`q`, per-block `d`, `s`), straight from
    /// the quantised row: Σ over blocks of (d_w · d_a) · Σ q_w q_a (+ m_w · s_a for Q4_1), as
    /// ggml's `vec_dot_*_q8_0` / `_q8_1`. The integer sums are exact in float (|Σ| < 2²⁴).
    @inline(__always)
    func dotQ8(row r: Int, q: UnsafePointer<Float>, d: UnsafePointer<Float>, s: UnsafePointer<Float>) -> Float {
        var src = data + r * rowBytes
        var x = q
        var acc = SIMD8<Float>()
        var offset: Float = 0
        let hasMins = type == .q4_1
        for b in 0..<(columns / 32) {
            let (w0, w1, w2, w3) = blockLanes(src)
            var p = w0 * load8(x)
            p = fma(w1, load8(x + 8), p)
            p = fma(w2, load8(x + 16), p)
            p = fma(w3, load8(x + 24), p)
            acc = fma(SIMD8(repeating: half(src, 0) * d[b]), p, acc)
            if hasMins { offset += half(src, 2) * s[b] }
            src += type.blockBytes
            x += 32
        }
        return ggmlSum(acc) + offset
    }

    /// One token's product from a row's `blockIntegers` (the prefill remainder).
    @inline(__always)
    func dot(ints: UnsafePointer<Float>, scales: UnsafePointer<Float>, mins: UnsafePointer<Float>,
             q: UnsafePointer<Float>, d: UnsafePointer<Float>, s: UnsafePointer<Float>) -> Float {
        var acc = SIMD8<Float>()
        var offset: Float = 0
        let hasMins = type == .q4_1
        for b in 0..<(columns / 32) {
            let w = ints + 32 * b, x = q + 32 * b
            let p = fma(load8(w + 24), load8(x + 24), fma(load8(w + 16), load8(x + 16), fma(load8(w + 8), load8(x + 8), load8(w) * load8(x))))
            acc = fma(SIMD8(repeating: scales[b] * d[b]), p, acc)
            if hasMins { offset += mins[b] * s[b] }
        }
        return ggmlSum(acc) + offset
    }

    /// The same products for four tokens at once from a row's `blockIntegers` (prefill): each
    /// weight vector is loaded once for the four.
    @inline(__always)
    func dotQ8x4(ints: UnsafePointer<Float>, scales: UnsafePointer<Float>, mins: UnsafePointer<Float>,
                 q: UnsafePointer<Float>, d: UnsafePointer<Float>, s: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, stride: Int) {
        let blocks = columns / 32
        var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
        var o0: Float = 0, o1: Float = 0, o2: Float = 0, o3: Float = 0
        let hasMins = type == .q4_1
        let c = columns
        for b in 0..<blocks {
            let w = ints + 32 * b
            let w0 = load8(w), w1 = load8(w + 8), w2 = load8(w + 16), w3 = load8(w + 24)
            @inline(__always) func block(_ x: UnsafePointer<Float>) -> SIMD8<Float> {
                fma(w3, load8(x + 24), fma(w2, load8(x + 16), fma(w1, load8(x + 8), w0 * load8(x))))
            }
            let x = q + 32 * b
            let p0 = block(x), p1 = block(x + c), p2 = block(x + 2 * c), p3 = block(x + 3 * c)
            let sc = scales[b]
            a0 = fma(SIMD8(repeating: sc * d[b]), p0, a0)
            a1 = fma(SIMD8(repeating: sc * d[blocks + b]), p1, a1)
            a2 = fma(SIMD8(repeating: sc * d[2 * blocks + b]), p2, a2)
            a3 = fma(SIMD8(repeating: sc * d[3 * blocks + b]), p3, a3)
            if hasMins {
                let m = mins[b]
                o0 += m * s[b]
                o1 += m * s[blocks + b]
                o2 += m * s[2 * blocks + b]
                o3 += m * s[3 * blocks + b]
            }
        }
        out[0] = ggmlSum(a0) + o0
        out[stride] = ggmlSum(a1) + o1
        out[2 * stride] = ggmlSum(a2) + o2
        out[3 * stride] = ggmlSum(a3) + o3
    }

    /// Y[t] = W · X[t] with the activations quantised to Q8 blocks first (ggml's numerics for
    /// these types); rows split across `threads` workers.
    func multiplyQ8(_ x: UnsafePointer<Float>, tokens: Int, into y: UnsafeMutablePointer<Float>, threads: Int) {
        let a = Q8Activations(x, tokens: tokens, columns: columns)
        nonisolated(unsafe) let yp = y
        let matrix = self
        let workers = max(1, min(threads, rows / 16))
        let chunk = (rows + workers - 1) / workers
        let blocks = columns / 32
        a.q.withUnsafeBufferPointer { qb in
            a.d.withUnsafeBufferPointer { db in
                a.s.withUnsafeBufferPointer { sb in
                    nonisolated(unsafe) let aq = qb.baseAddress!, ad = db.baseAddress!, asum = sb.baseAddress!
                    DispatchQueue.concurrentPerform(iterations: workers) { w in
                        let rows = (w * chunk)..<min(matrix.rows, (w + 1) * chunk)
                        if tokens == 1 {
                            for r in rows { yp[r] = matrix.dotQ8(row: r, q: aq, d: ad, s: asum) }
                            return
                        }
                        let ints = UnsafeMutablePointer<Float>.allocate(capacity: matrix.columns)
                        let scales = UnsafeMutablePointer<Float>.allocate(capacity: blocks)
                        let mins = UnsafeMutablePointer<Float>.allocate(capacity: blocks)
                        defer { ints.deallocate(); scales.deallocate(); mins.deallocate() }
                        for r in rows {
                            matrix.blockIntegers(row: r, into: ints, scales: scales, mins: mins)
                            var t = 0
                            while t + 4 <= tokens {
                                matrix.dotQ8x4(ints: ints, scales: scales, mins: mins, q: aq + t * matrix.columns, d: ad + t * blocks,
                                               s: asum + t * blocks, into: yp + t * matrix.rows + r, stride: matrix.rows)
                                t += 4
                            }
                            while t < tokens {
                                yp[t * matrix.rows + r] = matrix.dot(ints: ints, scales: scales, mins: mins, q: aq + t * matrix.columns,
                                                                     d: ad + t * blocks, s: asum + t * blocks)
                                t += 1
                            }
                        }
                    }
                }
            }
        }
    }
}

@inline(__always)
func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}


import Dispatch

/// Unsigned integers below 2²³ as floats, exactly: the integer placed in the mantissa of 2²³,
/// minus 2²³ (two SIMD operations instead of a per-lane conversion).
@inline(__always)
func exactFloat(_ v: SIMD8<UInt32>) -> SIMD8<Float> {
    SIMD8<Float>(bitPattern: v | 0x4B00_0000) - 8_388_608
}
