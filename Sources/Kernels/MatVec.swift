/// acc + a·b, fused when the build targets a CPU with FMA (`CKV_FMA`), else a multiply and an add.
@inline(__always)
func madd<V: SIMD>(_ acc: V, _ a: V, _ b: V) -> V where V.Scalar: BinaryFloatingPoint {
    #if CKV_FMA
    return acc.addingProduct(a, b)
    #else
    return acc + a * b
    #endif
}

/// A weight matrix in a ggml type: `rows` rows of `columns` elements, row-major (ggml's
/// `ne[0]` = columns is the contiguous dimension).
public struct QuantizedMatrix: @unchecked Sendable {
    public let type: GGMLType
    public let rows: Int
    public let columns: Int
    /// The first byte of row 0; rows follow each other `type.rowBytes(columns)` apart.
    public let data: UnsafeRawPointer
    /// Whether products quantise the activations first, as ggml does: Q8_0/Q8_1 blocks for the
    /// 32-element block types (`multiplyQ8`), Q8_K for Q4_K and Q6_K (`multiplyQ8K`); false
    /// multiplies f32 activations.
    public var quantizesActivations: Bool { type.multipliesQ8Activations || type.multipliesQ8KActivations }

    public init(type: GGMLType, rows: Int, columns: Int, data: UnsafeRawPointer) {
        precondition(columns % type.blockSize == 0, "\(columns) columns are not a multiple of \(type.name)'s block")
        self.type = type
        self.rows = rows
        self.columns = columns
        self.data = data
    }

    public var rowBytes: Int { type.rowBytes(columns) }

    /// Row `r` dequantised into `dst[0 ..< columns]`.
    public func row(_ r: Int, into dst: UnsafeMutablePointer<Float>) {
        dequantizeRow(type, data + r * rowBytes, dst, count: columns)
    }

    /// The dot product of row `r` with `x`: each block is dequantised (bit-exact) into a small
    /// buffer and multiplied with `x` in 8 SIMD lanes, two accumulators, summed at the end.
    /// - Complexity: O(columns).
    @inline(__always)
    public func dot(row r: Int, _ x: UnsafePointer<Float>, scratch: UnsafeMutablePointer<Float>) -> Float {
        let bs = type.blockSize
        var src = data + r * rowBytes
        var acc0 = SIMD8<Float>(), acc1 = SIMD8<Float>()
        var xp = x
        if bs == 1 {
            dequantizeRow(type, src, scratch, count: columns)
            return dotF32(scratch, x, columns)
        }
        if type == .q8_0 {
            // Fused: the same products as dequantise-then-dot (Float(q) · d, then · x), in SIMD.
            for _ in 0..<(columns / 32) {
                let d = SIMD8<Float>(repeating: half(src, 0))
                for j in stride(from: 0, to: 32, by: 16) {
                    let q0 = SIMD8<Float>(SIMD8<Int32>(truncatingIfNeeded: (src + 2 + j).loadUnaligned(as: SIMD8<Int8>.self)))
                    let q1 = SIMD8<Float>(SIMD8<Int32>(truncatingIfNeeded: (src + 2 + j + 8).loadUnaligned(as: SIMD8<Int8>.self)))
                    acc0 = madd(acc0, q0 * d, UnsafeRawPointer(xp + j).loadUnaligned(as: SIMD8<Float>.self))
                    acc1 = madd(acc1, q1 * d, UnsafeRawPointer(xp + j + 8).loadUnaligned(as: SIMD8<Float>.self))
                }
                src += 34
                xp += 32
            }
            return (acc0 + acc1).sum()
        }
        if type == .q5_0 {
            // Fused: element j's value (q − 16) · d with q = nibble | (bit j of qh) << 4, as dequantizeBlock.
            let lanes = SIMD8<UInt32>(0, 1, 2, 3, 4, 5, 6, 7)
            for _ in 0..<(columns / 32) {
                let d = SIMD8<Float>(repeating: half(src, 0))
                let qh = SIMD8<UInt32>(repeating: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: 2, as: UInt32.self)))
                for half8 in 0..<2 {
                    let qs = SIMD8<UInt32>(truncatingIfNeeded: (src + 6 + 8 * half8).loadUnaligned(as: SIMD8<UInt8>.self))
                    let shiftLo = lanes &+ UInt32(8 * half8), shiftHi = shiftLo &+ 16
                    let lo = (qs & 0xF) | (((qh &>> shiftLo) & 1) &<< 4)
                    let hi = (qs &>> 4) | (((qh &>> shiftHi) & 1) &<< 4)
                    let wLo = SIMD8<Float>(SIMD8<Int32>(truncatingIfNeeded: lo) &- 16) * d
                    let wHi = SIMD8<Float>(SIMD8<Int32>(truncatingIfNeeded: hi) &- 16) * d
                    acc0 = madd(acc0, wLo, UnsafeRawPointer(xp + 8 * half8).loadUnaligned(as: SIMD8<Float>.self))
                    acc1 = madd(acc1, wHi, UnsafeRawPointer(xp + 16 + 8 * half8).loadUnaligned(as: SIMD8<Float>.self))
                }
                src += 22
                xp += 32
            }
            return (acc0 + acc1).sum()
        }
        for _ in 0..<(columns / bs) {
            dequantizeBlock(type, src, scratch)
            var j = 0
            while j < bs {
                let w0 = UnsafeRawPointer(scratch + j).loadUnaligned(as: SIMD8<Float>.self)
                let x0 = UnsafeRawPointer(xp + j).loadUnaligned(as: SIMD8<Float>.self)
                let w1 = UnsafeRawPointer(scratch + j + 8).loadUnaligned(as: SIMD8<Float>.self)
                let x1 = UnsafeRawPointer(xp + j + 8).loadUnaligned(as: SIMD8<Float>.self)
                acc0 = madd(acc0, w0, x0)
                acc1 = madd(acc1, w1, x1)
                j += 16
            }
            src += type.blockBytes
            xp += bs
        }
        return (acc0 + acc1).sum()
    }

    /// y = W x, rows split across `threads` workers. For the 32-element block types the
    /// activations are quantised to Q8 blocks first, as ggml does (`multiplyQ8`).
    /// - Parameters:
    ///   - x: `columns` inputs.
    ///   - y: `rows` outputs.
    public func multiply(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, threads: Int = 2) {
        if quantizesActivations { return multiplyQuantized(x, tokens: 1, into: y, threads: threads) }
        nonisolated(unsafe) let xp = x, yp = y
        let matrix = self
        forRowRanges(threads: threads) { rows in
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: max(matrix.type.blockSize, matrix.type.blockSize == 1 ? matrix.columns : 0))
            defer { scratch.deallocate() }
            for r in rows {
                yp[r] = matrix.dot(row: r, xp, scratch: scratch)
            }
        }
    }
}

extension QuantizedMatrix {
    /// Splits the rows into one contiguous range per worker (at most `threads`, at least 16 rows
    /// each) and runs `body` on each range on the worker pool.
    func forRowRanges(threads: Int, _ body: @escaping @Sendable (Range<Int>) -> Void) {
        forRanges(of: rows, threads: threads, minimum: 16, body)
    }

    /// Y[t] = W · X[t] through the activation quantisation ggml uses for this weight type.
    func multiplyQuantized(_ x: UnsafePointer<Float>, tokens: Int, into y: UnsafeMutablePointer<Float>, threads: Int) {
        if type.multipliesQ8KActivations { multiplyQ8K(x, tokens: tokens, into: y, threads: threads) } else { multiplyQ8(x, tokens: tokens, into: y, threads: threads) }
    }

    /// Y[t] = W · X[t] for `tokens` inputs (X and Y token-major: X[t] at x + t·columns, Y[t] at
    /// y + t·rows). Each weight row is dequantised once and used for every token; rows are split
    /// across `threads` workers. Q8 activations for the 32-element block types, as `multiply`.
    public func multiplyBatch(_ x: UnsafePointer<Float>, tokens: Int, into y: UnsafeMutablePointer<Float>, threads: Int = 2) {
        if quantizesActivations { return multiplyQuantized(x, tokens: tokens, into: y, threads: threads) }
        nonisolated(unsafe) let xp = x, yp = y
        let matrix = self
        forRowRanges(threads: threads) { rows in
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: matrix.columns)
            defer { scratch.deallocate() }
            for r in rows {
                matrix.row(r, into: scratch)
                for t in 0..<tokens {
                    yp[t * matrix.rows + r] = dotF32(scratch, xp + t * matrix.columns, matrix.columns)
                }
            }
        }
    }
}

/// Σ a[i]·b[i] in 8 SIMD lanes with two accumulators, remainder scalar.
@inline(__always)
public func dotF32(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc0 = SIMD8<Float>(), acc1 = SIMD8<Float>()
    var i = 0
    while i + 16 <= n {
        acc0 = madd(acc0, UnsafeRawPointer(a + i).loadUnaligned(as: SIMD8<Float>.self), UnsafeRawPointer(b + i).loadUnaligned(as: SIMD8<Float>.self))
        acc1 = madd(acc1, UnsafeRawPointer(a + i + 8).loadUnaligned(as: SIMD8<Float>.self), UnsafeRawPointer(b + i + 8).loadUnaligned(as: SIMD8<Float>.self))
        i += 16
    }
    var s = (acc0 + acc1).sum()
    while i < n {
        s += a[i] * b[i]
        i += 1
    }
    return s
}

/// y += a · x over n values, in SIMD.
@inline(__always)
public func axpy(_ a: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
    let av = SIMD8<Float>(repeating: a)
    var i = 0
    while i + 8 <= n {
        let yv = UnsafeRawPointer(y + i).loadUnaligned(as: SIMD8<Float>.self)
        UnsafeMutableRawPointer(y + i).storeBytes(of: madd(yv, av, UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)), as: SIMD8<Float>.self)
        i += 8
    }
    while i < n {
        y[i] += a * x[i]
        i += 1
    }
}
