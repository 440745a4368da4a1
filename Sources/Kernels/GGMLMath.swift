// The vectorised elementary functions and reductions of ggml's x86 CPU backend (AVX2 + FMA),
// written for SIMD8 so the engine computes the same floats as llama.cpp on the same machine
// kind: `ggml_v_expf` (a polynomial exp, max error 1.45 ulp, from Arm's optimized-routines),
// `ggml_v_silu` = x / (1 + exp(−x)), and the 8-lane horizontal sum in ggml's order.
// Small models with massive activations amplify last-bit differences layer by layer, so the
// agreement with llama.cpp depends on computing the same roundings, not just close values.

/// ggml's 8-lane horizontal sum: ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)).
@inline(__always)
public func ggmlSum(_ v: SIMD8<Float>) -> Float {
    let a = v.lowHalf + v.highHalf
    let b0 = a[0] + a[2], b1 = a[1] + a[3]
    return b0 + b1
}

/// ggml's vectorised expf (AVX2 `ggml_v_expf`): n = round(x/ln2), b = x − n·ln2 (two-part),
/// 2ⁿ by exponent arithmetic, a degree-5 polynomial in b; out-of-range lanes handled apart
/// (|n| > 126 by scaling in two steps, |n| > 192 saturating to 0 or ∞).
@inline(__always)
public func ggmlExp(_ x: SIMD8<Float>) -> SIMD8<Float> {
    let r = SIMD8<Float>(repeating: 0x1.8p23)
    let z = fma(x, SIMD8(repeating: 0x1.715476p+0), r)
    let n = z - r
    let b = fma(-n, SIMD8(repeating: 0x1.7f7d1cp-20), fma(-n, SIMD8(repeating: 0x1.62e4p-1), x))
    let e = z.bitPattern &<< 23
    let k = SIMD8<Float>(bitPattern: e &+ SIMD8<Float>(repeating: 1).bitPattern)
    let absN = SIMD8<Float>(bitPattern: n.bitPattern & 0x7FFF_FFFF)
    let c = absN .> 126
    let u = b * b
    let j = fma(fma(fma(SIMD8(repeating: 0x1.0e4020p-7), b, SIMD8(repeating: 0x1.573e2ep-5)), u,
                    fma(SIMD8(repeating: 0x1.555e66p-3), b, SIMD8(repeating: 0x1.fffdb6p-2))),
                u, SIMD8(repeating: 0x1.ffffecp-1) * b)
    let normal = fma(j, k, k)
    if !any(c) { return normal }
    let g = SIMD8<UInt32>(repeating: 0).replacing(with: 0x8200_0000, where: n .<= 0)
    let s1 = SIMD8<Float>(bitPattern: g &+ 0x7F00_0000)
    let s2 = SIMD8<Float>(bitPattern: e &- g)
    let scaled = fma(s2, j, s2) * s1
    let huge = absN .> 192
    return normal.replacing(with: scaled, where: c).replacing(with: s1 * s1, where: huge)
}

/// ggml's vectorised SiLU (`ggml_v_silu`): x / (1 + exp(−x)) with `ggmlExp`.
@inline(__always)
public func ggmlSiLU(_ x: SIMD8<Float>) -> SIMD8<Float> {
    x / (1 + ggmlExp(0 - x))
}

/// a·b + c, always fused (ggml's `_mm256_fmadd_ps`); exact agreement needs the single rounding.
@inline(__always)
func fma(_ a: SIMD8<Float>, _ b: SIMD8<Float>, _ c: SIMD8<Float>) -> SIMD8<Float> {
    c.addingProduct(a, b)
}

extension SIMD8 where Scalar == Float {
    @inline(__always)
    init(bitPattern v: SIMD8<UInt32>) {
        self = unsafeBitCast(v, to: SIMD8<Float>.self)
    }

    @inline(__always)
    var bitPattern: SIMD8<UInt32> { unsafeBitCast(self, to: SIMD8<UInt32>.self) }
}
