import CKernels
import HalfFloat
import Testing

/// The attention kernels against a plain Swift statement of each summation order, and the vector
/// code against the portable code, bit for bit.
@Suite("Attention kernels")
struct AttentionKernelTests {
    /// Random binary16 values in (−4, 4) as bits.
    static func halves(_ n: Int, _ g: inout Bytes) -> [UInt16] {
        (0..<n).map { _ in Float16(g.unit() * 4 + g.unit() / 64).bitPattern }
    }

    /// One score in tinyBLAS's order (one 8-lane accumulator) or `ggml_vec_dot_f16`'s.
    static func referenceScore(_ q: ArraySlice<Float>, _ k: ArraySlice<UInt16>, vecDot: Bool) -> Float {
        let q = Array(q), k = Array(k).map(HalfFloat.float), d = q.count
        if !vecDot {
            var acc = [Float](repeating: 0, count: 8)
            for i in 0..<d { acc[i % 8] = acc[i % 8].addingProduct(k[i], q[i]) }
            return lanesTotal(acc)
        }
        var s = [[Float]](repeating: [Float](repeating: 0, count: 8), count: 4)
        let whole = d / 32 * 32
        for i in 0..<whole { s[(i % 32) / 8][i % 8] = s[(i % 32) / 8][i % 8].addingProduct(k[i], q[i]) }
        return Float(reduce4(s) + (whole..<d).reduce(0.0) { $0 + Double(k[$1] * q[$1]) })
    }

    /// ggml's 8-lane sum: ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)).
    static func lanesTotal(_ l: [Float]) -> Float {
        let a: Float = (l[0] + l[4]) + (l[2] + l[6]), b: Float = (l[1] + l[5]) + (l[3] + l[7])
        return a + b
    }

    /// `GGML_F32x8_REDUCE`: x = (s0+s2)+(s1+s3) per lane, t = x_l + x_{l+4}, (t0+t1)+(t2+t3).
    static func reduce4(_ s: [[Float]]) -> Double {
        var x = [Float](repeating: 0, count: 8)
        for l in 0..<8 {
            let a: Float = s[0][l] + s[2][l], b: Float = s[1][l] + s[3][l]
            x[l] = a + b
        }
        let t: [Float] = (0..<4).map { x[$0] + x[$0 + 4] }
        let lo: Float = t[0] + t[1], hi: Float = t[2] + t[3]
        return Double(lo + hi)
    }

    @Test("scores: tinyBLAS and vec_dot_f16 orders, vector code = portable code", arguments: [64, 256, 40])
    func scores(d: Int) {
        var g = Bytes(state: UInt64(d))
        let keys = 37, stride = 40
        let k = Self.halves(keys * d, &g)
        for heads in 1...5 {
            let q = Self.halves(heads * d, &g).map(HalfFloat.float)
            for order in [CKV_ORDER_GEMM, CKV_ORDER_VEC_DOT_F16] {
                let first = 3, end = 36
                var fast = [Float](repeating: -1, count: heads * stride), portable = fast
                ckv_attention_scores(Int32(order.rawValue), q, Int32(heads), d, k, Int32(d), Int32(first), Int32(end), 0.125, &fast, stride)
                ckv_attention_scores_portable(Int32(order.rawValue), q, Int32(heads), d, k, Int32(d), Int32(first), Int32(end), 0.125, &portable, stride)
                #expect(fast == portable, "d \(d) heads \(heads) order \(order.rawValue)")
                for h in 0..<heads {
                    for j in 0..<stride {
                        let expected = (first..<end).contains(j)
                            ? Self.referenceScore(q[(h * d)..<((h + 1) * d)], k[(j * d)..<((j + 1) * d)], vecDot: order == CKV_ORDER_VEC_DOT_F16) * 0.125
                            : -1 // cells outside [first, end) are not written
                        #expect(fast[h * stride + j].bitPattern == expected.bitPattern, "d \(d) heads \(heads) order \(order.rawValue) key \(j)")
                    }
                }
            }
        }
    }

    @Test("weighted values over transposed rows: both orders, lanes by cell index, vector = portable", arguments: [64, 256, 40])
    func values(d: Int) {
        var g = Bytes(state: UInt64(d) + 7)
        let stride = 96
        let vt = Self.halves(d * stride, &g)
        for heads in 1...5 {
            for order in [CKV_ORDER_GEMM, CKV_ORDER_VEC_DOT_F16] {
                let vecDot = order == CKV_ORDER_VEC_DOT_F16
                let begin = vecDot ? 32 : 8, end = 96, first = begin + 5, last = 90
                // Weights are f16 values, zero outside the attended cells [first, last].
                var w = [Float](repeating: 0, count: heads * stride)
                for h in 0..<heads {
                    for c in first...last { w[h * stride + c] = HalfFloat.round(abs(g.unit()) / 8) }
                }
                var fast = [Float](repeating: 0, count: heads * d), portable = fast
                ckv_attention_values(Int32(order.rawValue), w, Int32(heads), stride, vt, stride, Int32(d), Int32(begin), Int32(end), &fast, d)
                ckv_attention_values_portable(Int32(order.rawValue), w, Int32(heads), stride, vt, stride, Int32(d), Int32(begin), Int32(end), &portable, d)
                #expect(fast == portable, "d \(d) heads \(heads) order \(order.rawValue)")
                for h in 0..<heads {
                    for e in 0..<d {
                        // Lane = cell index mod 8 (tinyBLAS) or mod 32 (vec_dot_f16: 4 accumulators × 8).
                        var s = [[Float]](repeating: [Float](repeating: 0, count: 8), count: 4)
                        for c in begin..<end {
                            let a = vecDot ? (c % 32) / 8 : 0
                            s[a][c % 8] = s[a][c % 8].addingProduct(HalfFloat.float(vt[e * stride + c]), w[h * stride + c])
                        }
                        let expected = vecDot ? Float(Self.reduce4(s)) : Self.lanesTotal(s[0])
                        #expect(fast[h * d + e].bitPattern == expected.bitPattern, "d \(d) heads \(heads) order \(order.rawValue) row \(e)")
                    }
                }
            }
        }
    }

    @Test("binary16 rounding matches HalfFloat (ties to even, subnormals, overflow), weights zero-filled")
    func rounding() {
        var g = Bytes(state: 3)
        var x: [Float] = [0, -0, 1, 65504, 65519.99, 65520, 1e6, -1e6, .infinity, -.infinity, 6.1e-5, 5.96e-8, 2.98e-8, 2.99e-8, 1e-9, 1 + 1 / 2048, 1 + 3 / 2048]
        x += (0..<1000).map { _ in g.unit() * Float(1 << Int(g.next() % 20)) / 1024 }
        var y = [Float](repeating: .nan, count: x.count)
        ckv_round_to_half(x, &y, x.count)
        for (a, b) in zip(x, y) { #expect(b.bitPattern == HalfFloat.round(a).bitPattern, "\(a)") }

        var p: [Float] = (0..<24).map { Float($0) + 1 / 3 }
        var w = [Float](repeating: .nan, count: 24)
        ckv_attention_weights(&p, 5, 19, 0.01, &w, 0, 24)
        for j in 0..<24 {
            let scaled = (Float(j) + 1 / 3) * 0.01
            #expect(p[j] == ((5..<19).contains(j) ? scaled : Float(j) + 1 / 3))
            #expect(w[j] == ((5..<19).contains(j) ? HalfFloat.round(scaled) : 0))
        }
    }
}
