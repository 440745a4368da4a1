import Dispatch

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

/// Activations of `tokens` rows of `columns` values (a multiple of 256) in ggml's Q8_K blocks, the
/// 8-bit values held as integer-valued floats in lane order within each 32-element chunk
/// (position 8i + k holds element 4k + i, as `Q8Activations`).
public struct Q8KActivations: Sendable {
    public let tokens: Int
    public let columns: Int
    public internal(set) var q: [Float]
    /// Per 256-element block: the scale 1/iscale.
    public internal(set) var d: [Float]
    /// Per 16 elements: Σ q.
    public internal(set) var bsums: [Int32]

    public init(_ x: UnsafePointer<Float>, tokens: Int, columns: Int) {
        precondition(columns % 256 == 0, "\(columns) columns are not a multiple of 256")
        self.tokens = tokens
        self.columns = columns
        let blocks = tokens * columns / 256
        q = [Float](repeating: 0, count: tokens * columns)
        d = [Float](repeating: 0, count: blocks)
        bsums = [Int32](repeating: 0, count: blocks * 16)
        q.withUnsafeMutableBufferPointer { qp in
            for b in 0..<blocks {
                let src = x + 256 * b
                var amax: Float = 0
                for j in 0..<256 { amax = max(amax, abs(src[j])) }
                guard amax != 0 else { continue }
                let iscale = 127 / amax
                d[b] = 1 / iscale
                for j in 0..<256 {
                    let v = (iscale * src[j]).rounded(.toNearestOrEven)
                    let chunk = j / 32, e = j % 32
                    qp[256 * b + 32 * chunk + 8 * (e % 4) + e / 4] = v
                    bsums[16 * b + j / 16] += Int32(v)
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

@inline(__always)
private func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}

extension QuantizedMatrix {
    /// Row `r` · one token's Q8_K activations, for Q4_K weights (the `q4_K_8x8` kernels'
    /// arithmetic): the gemv (single rows) scales and accumulates once per super-block, the gemm
    /// (rows in groups of four) once per pair of sub-blocks (`pairwise`).
    @inline(__always)
    func dotQ4K(row r: Int, q: UnsafePointer<Float>, d: UnsafePointer<Float>, bsums: UnsafePointer<Int32>, pairwise: Bool) -> Float {
        var src = data + r * rowBytes
        var acc: Float = 0, accMin: Float = 0
        for b in 0..<(columns / 256) {
            let scales = src + 4
            var isum: Int32 = 0, imin: Int32 = 0
            for g in 0..<4 {
                // 32 bytes: low nibbles are sub-block 2g, high nibbles 2g + 1; byte 4k + i is
                // byte i of word k, element 4k + i of both sub-blocks.
                let words = (src + 16 + 32 * g).loadUnaligned(as: SIMD8<UInt32>.self)
                let x = q + 256 * b + 64 * g
                var lo = SIMD8<Float>(), hi = SIMD8<Float>()
                for i in 0..<4 {
                    let bytes = (words &>> UInt32(8 * i)) & 0xFF
                    lo = fma(exactFloat(bytes & 0xF), load8(x + 8 * i), lo)
                    hi = fma(exactFloat(bytes &>> 4), load8(x + 32 + 8 * i), hi)
                }
                let (sc0, m0) = scaleMinK4(2 * g, scales), (sc1, m1) = scaleMinK4(2 * g + 1, scales)
                isum += Int32(sc0) * Int32(lo.sum()) + Int32(sc1) * Int32(hi.sum())
                let s = bsums + 16 * b + 4 * g
                imin += Int32(m0) * (s[0] + s[1]) + Int32(m1) * (s[2] + s[3])
                if pairwise {
                    acc = acc.addingProduct(Float(isum), half(src, 0) * d[b])
                    accMin = accMin.addingProduct(Float(imin), half(src, 2) * d[b])
                    isum = 0
                    imin = 0
                }
            }
            if !pairwise {
                acc = acc.addingProduct(Float(isum), half(src, 0) * d[b])
                accMin = accMin.addingProduct(Float(imin), half(src, 2) * d[b])
            }
            src += 144
        }
        return acc - accMin
    }

    /// Row `r` · one token's Q8_K activations, for Q6_K weights: `ggml_vec_dot_q6_K_q8_K` (AVX2)
    /// for batches under 8 tokens, ggml's tiled K-quant matmul (`ggml-cpu/tiled`) for larger ones:
    /// per super-block its exact integer I, then acc = fma(d_w · float(I), d_a, acc).
    @inline(__always)
    func dotQ6K(row r: Int, q: UnsafePointer<Float>, d: UnsafePointer<Float>, bsums: UnsafePointer<Int32>, tiled: Bool) -> Float {
        var src = data + r * rowBytes
        var acc = SIMD8<Float>()
        var tiledAcc: Float = 0
        for b in 0..<(columns / 256) {
            let sc = (src + 192).assumingMemoryBound(to: Int8.self)
            var lanes = SIMD8<Int32>()
            for j in 0..<2 {
                let high = (src + 128 + 32 * j).loadUnaligned(as: SIMD8<UInt32>.self)
                let lowA = (src + 64 * j).loadUnaligned(as: SIMD8<UInt32>.self)
                let lowB = (src + 64 * j + 32).loadUnaligned(as: SIMD8<UInt32>.self)
                for g in 0..<4 {
                    // Chunk c = 4j + g: low 4 bits from ql (first or second 32 bytes, low or
                    // high nibble), high 2 bits from qh bits 2g, 2g + 1; unsigned 0…63.
                    let c = 4 * j + g
                    let low = g % 2 == 0 ? lowA : lowB, nibble = UInt32(g < 2 ? 0 : 4)
                    let x = q + 256 * b + 32 * c
                    var p = SIMD8<Float>()
                    for i in 0..<4 {
                        let l = (low &>> (UInt32(8 * i) + nibble)) & 0xF
                        let h = ((high &>> UInt32(8 * i + 2 * g)) & 3) &<< 4
                        p = fma(exactFloat(l | h), load8(x + 8 * i), p)
                    }
                    let s0 = Int32(sc[2 * c]), s1 = Int32(sc[2 * c + 1])
                    lanes &+= SIMD8(s0, s0, s0, s0, s1, s1, s1, s1) &* SIMD8<Int32>(p)
                }
            }
            let s = bsums + 16 * b
            for k in 0..<8 { lanes[k] &-= 32 &* (Int32(sc[2 * k]) &* s[2 * k] &+ Int32(sc[2 * k + 1]) &* s[2 * k + 1]) }
            if tiled {
                tiledAcc = tiledAcc.addingProduct(half(src, 208) * Float(lanes.wrappedSum()), d[b])
            } else {
                acc = fma(SIMD8(repeating: d[b] * half(src, 208)), SIMD8<Float>(lanes), acc)
            }
            src += 210
        }
        return tiled ? tiledAcc : ggmlSum(acc)
    }

    /// Y[t] = W · X[t] for K-quant weights with the activations quantised to Q8_K first (ggml's
    /// numerics for these types); rows split across `threads` workers.
    func multiplyQ8K(_ x: UnsafePointer<Float>, tokens: Int, into y: UnsafeMutablePointer<Float>, threads: Int) {
        let a = Q8KActivations(x, tokens: tokens, columns: columns)
        nonisolated(unsafe) let yp = y
        let matrix = self
        let workers = max(1, min(threads, rows / 16))
        let chunk = (rows + workers - 1) / workers
        let blocks = columns / 256
        let q6 = type == .q6_K
        a.q.withUnsafeBufferPointer { qb in
            a.d.withUnsafeBufferPointer { db in
                a.bsums.withUnsafeBufferPointer { sb in
                    nonisolated(unsafe) let aq = qb.baseAddress!, ad = db.baseAddress!, asum = sb.baseAddress!
                    DispatchQueue.concurrentPerform(iterations: workers) { w in
                        // Q4_K (repacked): ggml multiplies the rows in groups of four by its gemm, the
                        // rest by its gemv. Q6_K: the tiled matmul from 8 rows on.
                        let grouped = tokens - tokens % 4, tiled = tokens >= 8
                        for r in (w * chunk)..<min(matrix.rows, (w + 1) * chunk) {
                            for t in 0..<tokens {
                                let q = aq + t * matrix.columns, d = ad + t * blocks, s = asum + 16 * t * blocks
                                yp[t * matrix.rows + r] = q6 ? matrix.dotQ6K(row: r, q: q, d: d, bsums: s, tiled: tiled)
                                    : matrix.dotQ4K(row: r, q: q, d: d, bsums: s, pairwise: t < grouped)
                            }
                        }
                    }
                }
            }
        }
    }
}
