import Foundation

/// Kernel latencies measured on one GPU, as NVIDIA's aiconfigurator-core ships them for vLLM
/// (`Sources/Hardware/KernelData/<gpu>.tsv`, converted by `scripts/kernel-tables.py`; provenance
/// in that folder's README): dense GEMMs by (m, n, k) and dtype, prefill ("context") and decode
/// ("generation") attention by batch, length, heads and KV heads at head_dim 128 with a bf16
/// cache, the fused mixture-of-experts layer of the catalogue's MoE shapes by dtype, TP degree and
/// tokens, and vLLM's custom all-reduce by GPU count and message size.
///
/// Lookups interpolate linearly between measured points, so they are exact at a point and
/// monotone between points wherever the measurements are. Below the smallest measured size a
/// lookup returns the smallest size's latency (launch-bound kernels do not get faster). Above
/// the largest it scales by the kernel's regime: GEMMs and all-reduces linearly in every
/// dimension, prefill attention with the square of the length and linearly in the batch, decode
/// attention linearly in both. A head layout the tables do not have is nil: the caller falls
/// back to the roofline and says so.
public struct KernelTables: Sendable {
    /// The catalogue GPU the tables are for.
    public let gpu: String
    /// "aiconfigurator-core 0.12.0".
    public let source: String
    /// "vllm 0.14.0".
    public let framework: String
    /// The device the measurements name ("NVIDIA A100-SXM4-80GB").
    public let device: String
    /// Which kernels were kept where the package has several.
    public let kernels: String
    /// GEMM dtypes with tables ("bf16", "fp8").
    public var gemmTypes: [String] { gemms.keys.sorted() }
    /// GPU counts with all-reduce tables.
    public var allReduceSizes: [Int] { allReduces.keys.sorted() }

    let gemms: [String: Grid3]
    let contexts: [HeadPair: BatchRows]
    let generations: [HeadPair: BatchRows]
    let allReduces: [Int: Curve]
    let moes: [MoEShape: Curve]

    /// The head_dim every attention table was measured at.
    public static let headDim = 128

    // MARK: Lookups (seconds)

    /// One GEMM of `m` × `k` activations by `k` × `n` weights in `dtype` ("bf16", "fp8"); nil without a table.
    public func gemm(_ dtype: String, m: Int, n: Int, k: Int) -> Double? {
        gemms[dtype].map { $0.value(Double(m), Double(n), Double(k)) / 1000 }
    }

    /// Seconds of the GEMMs `shapes` (n, k) together, as a function of m: the same values as
    /// summing `gemm` over them (interpolation along m is linear), resolved once for a model.
    func gemmCurve(_ dtype: String, shapes: [(n: Int, k: Int)]) -> Curve? {
        guard let grid = gemms[dtype] else { return nil }
        return Curve(xs: grid.ms, ys: grid.ms.map { m in shapes.reduce(0) { $0 + grid.value(m, Double($1.n), Double($1.k)) } / 1000 })
    }

    /// Attention seconds for one head layout, resolved once: the measured layout, or the two
    /// measured query-head counts around it with the same KV heads (attention cost grows with the
    /// query heads), or nil.
    func attentionRows(context: Bool, heads: Int, kvHeads: Int) -> HeadRows? {
        let tables = context ? contexts : generations
        if let rows = tables[HeadPair(heads: heads, kvHeads: kvHeads)] { return HeadRows(lower: rows, upper: rows, weight: 0) }
        let sameKV = tables.keys.filter { $0.kvHeads == kvHeads }.map(\.heads).sorted()
        guard let below = sameKV.last(where: { $0 < heads }), let above = sameKV.first(where: { $0 > heads }) else { return nil }
        return HeadRows(lower: tables[HeadPair(heads: below, kvHeads: kvHeads)]!, upper: tables[HeadPair(heads: above, kvHeads: kvHeads)]!,
                        weight: Double(heads - below) / Double(above - below))
    }

    /// Causal prefill attention of `batch` sequences of `length` tokens each, one layer.
    public func contextAttention(batch: Double, length: Double, heads: Int, kvHeads: Int) -> Double? {
        attentionRows(context: true, heads: heads, kvHeads: kvHeads)?.value(batch: batch, length: length)
    }

    /// Decode attention of `batch` sequences reading `length` cached tokens each, one layer.
    public func generationAttention(batch: Double, length: Double, heads: Int, kvHeads: Int) -> Double? {
        attentionRows(context: false, heads: heads, kvHeads: kvHeads)?.value(batch: batch, length: length)
    }

    /// One all-reduce of `elements` bf16 values over `gpus` GPUs; nil without a table for that count.
    public func allReduce(gpus: Int, elements: Double) -> Double? {
        allReduces[gpus].map { $0.value(elements, power: 1) / 1000 }
    }

    /// One fused MoE layer (routing, both expert GEMMs, the activation) for `tokens` tokens per GPU
    /// at TP `tp` (each expert split `tp` ways), in `dtype` ("bf16", "fp8", "fp8_block"); nil without
    /// a table for that shape, dtype and TP.
    public func moe(_ dtype: String, tp: Int, hidden: Int, intermediate: Int, activeExperts: Int, experts: Int, tokens: Double) -> Double? {
        moeCurve(dtype, tp: tp, hidden: hidden, intermediate: intermediate, activeExperts: activeExperts, experts: experts)
            .map { $0.value(tokens, power: 1) }
    }

    /// The same, as a function of the tokens (seconds), resolved once for a model.
    func moeCurve(_ dtype: String, tp: Int, hidden: Int, intermediate: Int, activeExperts: Int, experts: Int) -> Curve? {
        moes[MoEShape(dtype: dtype, tp: tp, hidden: hidden, intermediate: intermediate, activeExperts: activeExperts, experts: experts)]
            .map { Curve(xs: $0.xs, ys: $0.ys.map { $0 / 1000 }) }
    }

    /// Whether attention with `heads` query and `kvHeads` KV heads per GPU has a table.
    public func coversAttention(heads: Int, kvHeads: Int) -> Bool {
        contextAttention(batch: 1, length: 1, heads: heads, kvHeads: kvHeads) != nil
            && generationAttention(batch: 1, length: 1, heads: heads, kvHeads: kvHeads) != nil
    }



    // MARK: Loading

    /// The tables committed for catalogue GPU `gpu`, nil when there are none (loaded once).
    public static func named(_ gpu: String) -> KernelTables? { cache.tables(gpu) }

    /// The GPUs with committed tables.
    public static var available: [String] {
        guard let dir = directory, let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return [] }
        return names.filter { $0.hasSuffix(".tsv") }.map { String($0.dropLast(4)) }.sorted()
    }

    static var directory: String? { Bundle.module.resourcePath.map { ($0 as NSString).appendingPathComponent("KernelData") } }

    private static let cache = Cache()

    private final class Cache: @unchecked Sendable {
        private let lock = NSLock()
        private var loaded: [String: KernelTables?] = [:]

        func tables(_ gpu: String) -> KernelTables? {
            lock.lock()
            defer { lock.unlock() }
            if let known = loaded[gpu] { return known }
            var tables: KernelTables?
            if let dir = KernelTables.directory {
                let path = (dir as NSString).appendingPathComponent("\(gpu).tsv")
                if let text = try? String(contentsOfFile: path, encoding: .utf8) {
                    // A committed file that does not parse is a broken build, not bad user input.
                    do { tables = try KernelTables(parsing: text, file: path) } catch { fatalError("\(error)") }
                }
            }
            loaded[gpu] = tables
            return tables
        }
    }

    /// Parses the tab-separated format `scripts/kernel-tables.py` writes: `meta KEY VALUE`,
    /// `gemm DTYPE M N K MS`, `context|generation BATCH LENGTH HEADS KV_HEADS MS`,
    /// `moe DTYPE TP HIDDEN INTERMEDIATE TOPK EXPERTS TOKENS MS`, `allreduce GPUS ELEMENTS MS`;
    /// `#` lines are comments.
    /// - Throws: `KernelTableError` naming the file and line.
    public init(parsing text: String, file: String) throws {
        var meta: [String: String] = [:]
        var gemm: [String: [(Double, Double, Double, Double)]] = [:]
        var context: [HeadPair: [(Double, Double, Double)]] = [:], generation = context
        var reduce: [Int: [(Double, Double)]] = [:]
        var moe: [MoEShape: [(Double, Double)]] = [:]
        // Split on bytes, not Characters: the files are tens of thousands of ASCII lines.
        for (i, line) in text.utf8.split(separator: 0x0A, omittingEmptySubsequences: false).enumerated() where !line.isEmpty && line.first != 0x23 {
            let f = line.split(separator: 0x09, omittingEmptySubsequences: false)
            func bad(_ why: String) -> KernelTableError { KernelTableError("\(file):\(i + 1): \(why)") }
            func text(_ field: Substring.UTF8View) -> String { String(Substring(field)) }
            func numbers(_ from: Int, _ count: Int) throws -> [Double] {
                guard f.count == from + count else { throw bad("expected \(from + count) fields, found \(f.count)") }
                return try f[from...].map { field in
                    guard let v = Double(Substring(field)), v.isFinite, v > 0 else { throw bad("'\(text(field))' is not a positive number") }
                    return v
                }
            }
            switch text(f[0]) {
            case "meta":
                guard f.count == 3 else { throw bad("expected meta KEY VALUE") }
                meta[text(f[1])] = text(f[2])
            case "gemm":
                guard f.count == 6 else { throw bad("expected gemm DTYPE M N K MS") }
                let v = try numbers(2, 4)
                gemm[text(f[1]), default: []].append((v[0], v[1], v[2], v[3]))
            case let kind where kind == "context" || kind == "generation":
                let v = try numbers(1, 5)
                let pair = HeadPair(heads: Int(v[2]), kvHeads: Int(v[3]))
                if kind == "context" { context[pair, default: []].append((v[0], v[1], v[4])) } else { generation[pair, default: []].append((v[0], v[1], v[4])) }
            case "allreduce":
                let v = try numbers(1, 3)
                reduce[Int(v[0]), default: []].append((v[1], v[2]))
            case "moe":
                guard f.count == 9 else { throw bad("expected moe DTYPE TP HIDDEN INTERMEDIATE TOPK EXPERTS TOKENS MS") }
                let v = try numbers(2, 7)
                let shape = MoEShape(dtype: text(f[1]), tp: Int(v[0]), hidden: Int(v[1]), intermediate: Int(v[2]), activeExperts: Int(v[3]), experts: Int(v[4]))
                moe[shape, default: []].append((v[5], v[6]))
            case let kind:
                throw bad("unknown row kind '\(kind)' (known: meta, gemm, context, generation, moe, allreduce)")
            }
        }
        for key in ["gpu", "source", "framework", "device", "kernels"] where meta[key] == nil {
            throw KernelTableError("\(file): no 'meta \(key)' line")
        }
        self.gpu = meta["gpu"]!
        self.source = meta["source"]!
        self.framework = meta["framework"]!
        self.device = meta["device"]!
        self.kernels = meta["kernels"]!
        gemms = try gemm.mapValues { try Grid3(points: $0, file: file) }
        contexts = context.mapValues { BatchRows($0, lengthPower: 2) }
        generations = generation.mapValues { BatchRows($0, lengthPower: 1) }
        allReduces = reduce.mapValues { Curve(points: $0) }
        moes = moe.mapValues { Curve(points: $0) }
    }
}

/// Why a kernel table file cannot be read.
public struct KernelTableError: LocalizedError, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
    public var errorDescription: String? { description }
}

/// Attention rows of one head layout, in seconds: one measured layout, or two with the same KV
/// heads blended linearly in the query heads.
struct HeadRows: Sendable {
    let lower: BatchRows
    let upper: BatchRows
    let weight: Double

    func value(batch: Double, length: Double) -> Double {
        let lo = lower.value(batch: batch, length: length)
        return (weight == 0 ? lo : lo + (upper.value(batch: batch, length: length) - lo) * weight) / 1000
    }
}

struct MoEShape: Hashable, Sendable {
    var dtype: String
    var tp: Int
    var hidden: Int
    var intermediate: Int
    var activeExperts: Int
    var experts: Int
}

struct HeadPair: Hashable, Sendable {
    var heads: Int
    var kvHeads: Int
}

/// y(x) measured at ascending xs: linear between points, the first value below, y ∝ x^power above.
struct Curve: Sendable {
    let xs: [Double]
    let ys: [Double]

    init(xs: [Double], ys: [Double]) {
        self.xs = xs
        self.ys = ys
    }

    init(points: [(Double, Double)]) {
        // One value per x (the fastest, as the package's own de-duplication keeps), ascending.
        let best = Dictionary(points, uniquingKeysWith: min).sorted { $0.key < $1.key }
        xs = best.map(\.key)
        ys = best.map(\.value)
    }

    func value(_ x: Double, power: Double) -> Double {
        guard let last = xs.last else { return 0 }
        if x <= xs[0] { return ys[0] }
        if x >= last { return ys[ys.count - 1] * pow(x / last, power) }
        let (i, t) = bracket(xs, x)
        return ys[i] + (ys[i + 1] - ys[i]) * t
    }
}

/// The index i with xs[i] ≤ x < xs[i + 1] and x's position t ∈ [0, 1) between them (x inside the range).
@inline(__always)
func bracket(_ xs: [Double], _ x: Double) -> (Int, Double) {
    var lo = 0, hi = xs.count - 1
    while hi - lo > 1 {
        let mid = (lo + hi) / 2
        if xs[mid] <= x { lo = mid } else { hi = mid }
    }
    return (lo, (x - xs[lo]) / (xs[hi] - xs[lo]))
}

/// Attention latency by batch, each batch a curve over length (the package measures fewer lengths
/// at larger batches). Between batches linear; above the largest batch linear in the batch.
struct BatchRows: Sendable {
    let batches: [Double]
    let rows: [Curve]
    /// How latency grows past the longest measured length: 2 for prefill, 1 for decode.
    let lengthPower: Double

    init(_ points: [(Double, Double, Double)], lengthPower: Double) {
        self.lengthPower = lengthPower
        let byBatch = Dictionary(grouping: points, by: \.0).sorted { $0.key < $1.key }
        batches = byBatch.map(\.key)
        rows = byBatch.map { Curve(points: $0.value.map { ($0.1, $0.2) }) }
    }

    func value(batch b: Double, length: Double) -> Double {
        let last = batches.count - 1
        if b <= batches[0] { return rows[0].value(length, power: lengthPower) }
        if b >= batches[last] { return rows[last].value(length, power: lengthPower) * b / batches[last] }
        let (i, t) = bracket(batches, b)
        let lo = rows[i].value(length, power: lengthPower), hi = rows[i + 1].value(length, power: lengthPower)
        return lo + (hi - lo) * t
    }
}

/// GEMM latency on the (m, n, k) grid, trilinear inside, linear scaling above the largest size
/// along each axis, the smallest size's value below. A point the package did not measure (the
/// largest shapes at the largest m, the largest n × k) is filled from a smaller neighbour, scaled linearly.
struct Grid3: Sendable {
    let ms: [Double], ns: [Double], ks: [Double]
    /// m-major, then n, then k.
    let values: [Double]

    init(points: [(Double, Double, Double, Double)], file: String) throws {
        ms = Set(points.map(\.0)).sorted()
        ns = Set(points.map(\.1)).sorted()
        ks = Set(points.map(\.2)).sorted()
        var v = [Double](repeating: .nan, count: ms.count * ns.count * ks.count)
        let mi = Dictionary(uniqueKeysWithValues: ms.enumerated().map { ($1, $0) })
        let ni = Dictionary(uniqueKeysWithValues: ns.enumerated().map { ($1, $0) })
        let ki = Dictionary(uniqueKeysWithValues: ks.enumerated().map { ($1, $0) })
        let stride = ns.count * ks.count
        for (m, n, k, latency) in points {
            let at = mi[m]! * stride + ni[n]! * ks.count + ki[k]!
            v[at] = v[at].isNaN ? latency : min(v[at], latency)
        }
        // Fill what was not measured from a smaller neighbour, scaled linearly: first a smaller m
        // (the largest shapes lack the largest m), else a smaller n, else a smaller k.
        for i in ms.indices {
            for j in ns.indices {
                for l in ks.indices where v[i * stride + j * ks.count + l].isNaN {
                    let at = i * stride + j * ks.count + l
                    if i > 0 {
                        v[at] = v[at - stride] * ms[i] / ms[i - 1]
                    } else if j > 0 {
                        v[at] = v[at - ks.count] * ns[j] / ns[j - 1]
                    } else if l > 0 {
                        v[at] = v[at - 1] * ks[l] / ks[l - 1]
                    } else {
                        throw KernelTableError("\(file): GEMM has no value at its smallest shape (m \(ms[0]), n \(ns[0]), k \(ks[0]))")
                    }
                }
            }
        }
        values = v
    }

    /// Position along one axis: (lower index, weight of the upper one, factor beyond the range).
    @inline(__always)
    private func locate(_ axis: [Double], _ x: Double) -> (Int, Double, Double) {
        let last = axis.count - 1
        if last == 0 || x <= axis[0] { return (0, 0, 1) }
        if x >= axis[last] { return (last - 1, 1, x / axis[last]) }
        let (i, t) = bracket(axis, x)
        return (i, t, 1)
    }

    func value(_ m: Double, _ n: Double, _ k: Double) -> Double {
        let (i, ti, fi) = locate(ms, m), (j, tj, fj) = locate(ns, n), (l, tl, fl) = locate(ks, k)
        let stride = ns.count * ks.count
        func at(_ a: Int, _ b: Int, _ c: Int) -> Double {
            values[min(a, ms.count - 1) * stride + min(b, ns.count - 1) * ks.count + min(c, ks.count - 1)]
        }
        func alongK(_ a: Int, _ b: Int) -> Double { at(a, b, l) + (at(a, b, l + 1) - at(a, b, l)) * tl }
        func alongN(_ a: Int) -> Double { alongK(a, j) + (alongK(a, j + 1) - alongK(a, j)) * tj }
        return (alongN(i) + (alongN(i + 1) - alongN(i)) * ti) * fi * fj * fl
    }
}
