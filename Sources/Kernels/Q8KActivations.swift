
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

/// Integer-valued floats below 2²² in magnitude as integers, exactly: v + 1.5·2²³ puts v in the
/// mantissa (two SIMD operations; the standard library's conversion checks lane by lane).
@inline(__always)
private func exactInt(_ v: SIMD8<Float>) -> SIMD8<Int32> {
    unsafeBitCast(v + 12_582_912, to: SIMD8<Int32>.self) &- 0x4B40_0000
}

/// Integers as floats rounded to nearest even (`_mm256_cvtepi32_ps`): exact and fast below 2²²,
/// lane by lane above.
@inline(__always)
private func roundedFloat(_ v: SIMD8<Int32>) -> SIMD8<Float> {
    let limit = SIMD8<Int32>(repeating: 1 << 22)
    guard all(v .< limit .& v .> 0 &- limit) else { return SIMD8<Float>(Float(v[0]), Float(v[1]), Float(v[2]), Float(v[3]), Float(v[4]), Float(v[5]), Float(v[6]), Float(v[7])) }
    return unsafeBitCast(v &+ 0x4B40_0000, to: SIMD8<Float>.self) - 12_582_912
}

/// One row of K-quant weights decoded once and used for every token of a batch: the integers as
/// floats in the activations' lane order, the sub-block scales (Q6_K: as 8-lane vectors per
/// 32-element chunk, lanes 0…3 the first 16's scale, 4…7 the second's), the integers that multiply
/// the activation sums (Q4_K's mins; Q6_K's scales, for its −32 offset), and per super-block d
/// (and dmin).
struct KQuantRow {
    let type: GGMLType
    let blocks: Int
    let w: UnsafeMutablePointer<Float>
    let scales: UnsafeMutablePointer<Float>
    let bsumFactors: UnsafeMutablePointer<Int32>
    let d: UnsafeMutablePointer<Float>
    let dmin: UnsafeMutablePointer<Float>

    init(type: GGMLType, columns: Int) {
        self.type = type
        blocks = columns / 256
        w = .allocate(capacity: columns)
        scales = .allocate(capacity: blocks * 64)
        bsumFactors = .allocate(capacity: blocks * 16)
        d = .allocate(capacity: blocks)
        dmin = .allocate(capacity: blocks)
    }

    func deallocate() {
        w.deallocate(); scales.deallocate(); bsumFactors.deallocate(); d.deallocate(); dmin.deallocate()
    }

    /// Decodes row `r` of `m`.
    func load(_ m: QuantizedMatrix, row r: Int) {
        var src = m.data + r * m.rowBytes
        let out = UnsafeMutableRawPointer(w)
        for b in 0..<blocks {
            let base = 1024 * b // bytes of this super-block's 256 floats
            if type == .q4_K {
                d[b] = half(src, 0)
                dmin[b] = half(src, 2)
                for j in 0..<8 {
                    let (sc, mn) = scaleMinK4(j, src + 4)
                    scales[8 * b + j] = Float(sc)
                    bsumFactors[8 * b + j] = Int32(mn)
                }
                for g in 0..<4 {
                    // 32 bytes: low nibbles are chunk 2g, high nibbles chunk 2g + 1; byte 4k + i
                    // (byte i of word k) is element 4k + i of both.
                    let words = (src + 16 + 32 * g).loadUnaligned(as: SIMD8<UInt32>.self)
                    for i in 0..<4 {
                        let bytes = (words &>> UInt32(8 * i)) & 0xFF
                        out.storeBytes(of: exactFloat(bytes & 0xF), toByteOffset: base + 256 * g + 32 * i, as: SIMD8<Float>.self)
                        out.storeBytes(of: exactFloat(bytes &>> 4), toByteOffset: base + 256 * g + 128 + 32 * i, as: SIMD8<Float>.self)
                    }
                }
                src += 144
            } else {
                d[b] = half(src, 208)
                let sc = (src + 192).assumingMemoryBound(to: Int8.self)
                for c in 0..<8 {
                    let s0 = Float(sc[2 * c]), s1 = Float(sc[2 * c + 1])
                    UnsafeMutableRawPointer(scales + 64 * b + 8 * c).storeBytes(of: SIMD8(s0, s0, s0, s0, s1, s1, s1, s1), as: SIMD8<Float>.self)
                }
                for k in 0..<16 { bsumFactors[16 * b + k] = Int32(sc[k]) }
                for j in 0..<2 {
                    // Chunk c = 4j + g: low 4 bits from ql (first or second 32 bytes, low or high
                    // nibble), high 2 bits from qh bits 2g, 2g + 1; unsigned 0…63.
                    let high = (src + 128 + 32 * j).loadUnaligned(as: SIMD8<UInt32>.self)
                    let lowA = (src + 64 * j).loadUnaligned(as: SIMD8<UInt32>.self)
                    let lowB = (src + 64 * j + 32).loadUnaligned(as: SIMD8<UInt32>.self)
                    for g in 0..<4 {
                        let low = g % 2 == 0 ? lowA : lowB, nibble = UInt32(g < 2 ? 0 : 4)
                        for i in 0..<4 {
                            let l = (low &>> (UInt32(8 * i) + nibble)) & 0xF
                            let h = ((high &>> UInt32(8 * i + 2 * g)) & 3) &<< 4
                            out.storeBytes(of: exactFloat(l | h), toByteOffset: base + 128 * (4 * j + g) + 32 * i, as: SIMD8<Float>.self)
                        }
                    }
                }
                src += 210
            }
        }
    }

    /// This row · one token's Q8_K activations (`q`, per-block `ad`, `bsums`), in the order of the
    /// ggml kernel llama.cpp uses (see the file's comment): Q4_K's gemv (`pairwise` false) or gemm,
    /// Q6_K's vec_dot (`tiled` false) or tiled matmul. Integer sums are exact in float and below
    /// 2²² (so `exactInt` converts them): a Q4_K lane gathers at most 8·63·4·15·127, a Q6_K lane
    /// of one chunk 128·4·63·127.
    @inline(__always)
    func dot(q: UnsafePointer<Float>, ad: UnsafePointer<Float>, bsums: UnsafePointer<Int32>, pairwise: Bool, tiled: Bool) -> Float {
        if type == .q4_K {
            var acc: Float = 0, accMin: Float = 0
            for b in 0..<blocks {
                var total = SIMD8<Float>()
                var imin: Int32 = 0
                let dd = d[b] * ad[b], ddmin = dmin[b] * ad[b]
                for g in 0..<4 {
                    let wp = w + 256 * b + 64 * g, xp = q + 256 * b + 64 * g
                    var lo = load8(wp) * load8(xp), hi = load8(wp + 32) * load8(xp + 32)
                    for i in 1..<4 {
                        lo = fma(load8(wp + 8 * i), load8(xp + 8 * i), lo)
                        hi = fma(load8(wp + 32 + 8 * i), load8(xp + 32 + 8 * i), hi)
                    }
                    let v = fma(SIMD8(repeating: scales[8 * b + 2 * g]), lo, SIMD8(repeating: scales[8 * b + 2 * g + 1]) * hi)
                    let s = bsums + 16 * b + 4 * g
                    let m = bsumFactors[8 * b + 2 * g] &* (s[0] &+ s[1]) &+ bsumFactors[8 * b + 2 * g + 1] &* (s[2] &+ s[3])
                    if pairwise {
                        acc = acc.addingProduct(Float(exactInt(v).wrappedSum()), dd)
                        accMin = accMin.addingProduct(Float(m), ddmin)
                    } else {
                        total += v
                        imin &+= m
                    }
                }
                if !pairwise {
                    acc = acc.addingProduct(Float(exactInt(total).wrappedSum()), dd)
                    accMin = accMin.addingProduct(Float(imin), ddmin)
                }
            }
            return acc - accMin
        }
        var acc = SIMD8<Float>()
        var tiledAcc: Float = 0
        for b in 0..<blocks {
            var lanes = SIMD8<Int32>()
            for c in 0..<8 {
                let wp = w + 256 * b + 32 * c, xp = q + 256 * b + 32 * c
                var p = load8(wp) * load8(xp)
                for i in 1..<4 { p = fma(load8(wp + 8 * i), load8(xp + 8 * i), p) }
                lanes &+= exactInt(load8(scales + 64 * b + 8 * c) * p)
            }
            // Lane k: − 32 · (sc[2k]·bsum[2k] + sc[2k+1]·bsum[2k+1]) (ggml's q8sclsub).
            let s = UnsafeRawPointer(bsums + 16 * b).loadUnaligned(as: SIMD16<Int32>.self)
            let sc = UnsafeRawPointer(bsumFactors + 16 * b).loadUnaligned(as: SIMD16<Int32>.self)
            lanes &-= (sc.evenHalf &* s.evenHalf &+ sc.oddHalf &* s.oddHalf) &<< 5
            if tiled {
                tiledAcc = tiledAcc.addingProduct(d[b] * Float(lanes.wrappedSum()), ad[b])
            } else {
                acc = fma(SIMD8(repeating: ad[b] * d[b]), roundedFloat(lanes), acc)
            }
        }
        return tiled ? tiledAcc : ggmlSum(acc)
    }
}

extension QuantizedMatrix {
    /// Y[t] = W · X[t] for K-quant weights with the activations quantised to Q8_K first (ggml's
    /// numerics for these types); rows split across `threads` workers, each row decoded once.
    func multiplyQ8K(_ x: UnsafePointer<Float>, tokens: Int, into y: UnsafeMutablePointer<Float>, threads: Int) {
        let a = Q8KActivations(x, tokens: tokens, columns: columns)
        nonisolated(unsafe) let yp = y
        let matrix = self
        let workers = max(1, min(threads, rows / 16))
        let chunk = (rows + workers - 1) / workers
        let blocks = columns / 256
        a.q.withUnsafeBufferPointer { qb in
            a.d.withUnsafeBufferPointer { db in
                a.bsums.withUnsafeBufferPointer { sb in
                    nonisolated(unsafe) let aq = qb.baseAddress!, ad = db.baseAddress!, asum = sb.baseAddress!
                    WorkerPool.shared.run(iterations: workers, threads: threads) { w in
                        let row = KQuantRow(type: matrix.type, columns: matrix.columns)
                        defer { row.deallocate() }
                        // Q4_K (repacked): ggml multiplies the rows in groups of four by its gemm, the
                        // rest by its gemv. Q6_K: the tiled matmul from 8 rows on.
                        let grouped = tokens - tokens % 4, tiled = tokens >= 8
                        for r in (w * chunk)..<min(matrix.rows, (w + 1) * chunk) {
                            row.load(matrix, row: r)
                            for t in 0..<tokens {
                                yp[t * matrix.rows + r] = row.dot(q: aq + t * matrix.columns, ad: ad + t * blocks, bsums: asum + 16 * t * blocks,
                                                                  pairwise: t < grouped, tiled: tiled)
                            }
                        }
                    }
                }
            }
        }
    }
}
