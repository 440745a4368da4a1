import Policies

/// Collects, from the attention probe of a prompt's prefill, the statistics the policies read
/// (`LayerStatistics`): per layer and query head, the attention each prompt position received
/// from the last w queries (summed, and squared then summed) for every w asked, and from all
/// prompt queries.
public final class StatisticsCollector: @unchecked Sendable {
    public let promptLength: Int
    public let windows: [Int]
    let config: ModelConfig
    /// Flat, preallocated: accumulated attention per (layer, head), then per (layer, window, head)
    /// the window sums and squared sums, each over the n prompt keys. The probe adds into them in
    /// place (the same additions in the same order as nested arrays, without their per-element
    /// bounds, uniqueness and dictionary work).
    private let accumulated: UnsafeMutableBufferPointer<Float>
    private let sums: UnsafeMutableBufferPointer<Float>
    private let squares: UnsafeMutableBufferPointer<Float>

    /// - Parameter windows: the windows to collect (default: every window a policy reads).
    public init(config: ModelConfig, promptLength n: Int, windows: [Int] = StatisticsCollector.policyWindows) {
        self.config = config
        promptLength = n
        self.windows = windows.filter { $0 <= n }
        let perLayer = config.heads * n
        accumulated = .allocate(capacity: config.layers * perLayer)
        sums = .allocate(capacity: config.layers * self.windows.count * perLayer)
        squares = .allocate(capacity: config.layers * self.windows.count * perLayer)
        for buffer in [accumulated, sums, squares] { buffer.initialize(repeating: 0) }
    }

    deinit {
        accumulated.deallocate()
        sums.deallocate()
        squares.deallocate()
    }

    /// The windows the policies read, plain or squared (`PolicyKind.windowsRead`).
    public static let policyWindows: [Int] = {
        let read = PolicyKind.statisticWindows()
        return Array(Set(read.sums + read.squared)).sorted()
    }()

    /// The probe to pass to `prefill`. Head-local (each call writes only its (layer, head)'s
    /// rows), so `prefill(…, headLocalProbe: true)` may run it on several threads.
    public var probe: AttentionProbe {
        { [self] layer, head, position, first, weights in
            guard position < promptLength else { return }
            let n = promptLength, heads = config.heads
            let fromEnd = n - position // 1 for the last prompt query
            let count = min(weights.count, n - first)
            let w = weights.baseAddress!
            let acc = accumulated.baseAddress! + (layer * heads + head) * n + first
            for j in 0..<count { acc[j] += w[j] }
            for (k, window) in windows.enumerated() where fromEnd <= window { // the windows this query is in
                let at = ((layer * windows.count + k) * heads + head) * n + first
                let sum = sums.baseAddress! + at, square = squares.baseAddress! + at
                for j in 0..<count {
                    sum[j] += w[j]
                    square[j] += w[j] * w[j]
                }
            }
        }
    }

    /// The statistics, one per layer.
    public var statistics: [LayerStatistics] {
        let n = promptLength, heads = config.heads
        func rows(_ buffer: UnsafeMutableBufferPointer<Float>, from base: Int) -> [[Float]] {
            (0..<heads).map { h in Array(buffer[(base + h * n)..<(base + (h + 1) * n)]) }
        }
        return (0..<config.layers).map { l in
            var windowSums: [Int: [[Float]]] = [:], windowSquares: [Int: [[Float]]] = [:]
            for (k, window) in windows.enumerated() {
                let base = (l * windows.count + k) * heads * n
                windowSums[window] = rows(sums, from: base)
                windowSquares[window] = rows(squares, from: base)
            }
            return LayerStatistics(keys: n, queryHeads: heads, kvHeads: config.kvHeads, windowSums: windowSums,
                                   windowSquaredSums: windowSquares, accumulated: rows(accumulated, from: l * heads * n), isGlobal: config.isGlobal(l))
        }
    }
}

/// Collects the attention rows of the decode steps on the global layers: step s is the query at
/// position n − 1 + s (step 0 is the last prompt query, which produces the first generated
/// token); each row covers keys 0 … n − 1 + s (keys a sliding window masked get 0).
public final class DecodeRowCollector: @unchecked Sendable {
    public let promptLength: Int
    let config: ModelConfig
    /// Step 0's rows (the last prompt query, seen during prefill), n floats per (layer, head),
    /// preallocated so that a head-local prefill's threads each write their own.
    private let firstStep: UnsafeMutableBufferPointer<Float>
    /// Steps 1 …, seen during decode (one thread): step → layer → query head → weights.
    private var laterSteps: [[[[Float]]]] = []

    public init(config: ModelConfig, promptLength n: Int) {
        self.config = config
        promptLength = n
        firstStep = .allocate(capacity: config.layers * config.heads * n)
        firstStep.initialize(repeating: 0)
    }

    deinit { firstStep.deallocate() }

    /// Steps collected: step 0 once the prompt is prefilled, then one per decoded token.
    public var stepCount: Int { 1 + laterSteps.count }

    /// Step `s`'s rows: layer → query head → weights over positions 0 … n − 1 + s (empty for
    /// sliding-window layers).
    public func rows(step s: Int) -> [[[Float]]] {
        if s > 0 { return laterSteps[s - 1] }
        let n = promptLength, heads = config.heads
        return (0..<config.layers).map { l in
            config.isGlobal(l) ? (0..<heads).map { h in Array(firstStep[((l * heads + h) * n)..<((l * heads + h + 1) * n)]) } : Array(repeating: [], count: heads)
        }
    }

    /// The probe to pass to `prefill` (head-local: it may run on several threads, one head each)
    /// and `generate(from:)`.
    public var probe: AttentionProbe {
        { [self] layer, head, position, first, weights in
            guard position >= promptLength - 1, config.isGlobal(layer) else { return }
            let step = position - (promptLength - 1)
            guard step > 0 else {
                let row = firstStep.baseAddress! + (layer * config.heads + head) * promptLength
                for j in 0..<weights.count { row[first + j] = weights[j] }
                return
            }
            while laterSteps.count < step {
                laterSteps.append(Array(repeating: Array(repeating: [], count: config.heads), count: config.layers))
            }
            var row = [Float](repeating: 0, count: position + 1)
            for j in 0..<weights.count { row[first + j] = weights[j] }
            laterSteps[step - 1][layer][head] = row
        }
    }
}

/// A policy's choice from the statistics of the prompt: the positions to keep after prefill and,
/// for a continual policy, the eviction to go on with during decode.
public typealias TokenSelector = ([LayerStatistics]) throws -> Compression

extension LanguageModel {
    /// A real compressed run: prefills `prompt` with the full cache while collecting the
    /// statistics, lets `select` choose the positions to keep, compacts the cache to them, and
    /// generates greedily from the compressed cache (evicting during decode when `select` says so).
    /// - Returns: the generated tokens, the compression applied and the cache at the end.
    public func generateCompressed(prompt: [Int32], maxTokens: Int, select: TokenSelector,
                                   onToken: (Int32) -> Void = { _ in }) throws -> (tokens: [Int32], selection: Selection, cache: KVCache) {
        let collector = StatisticsCollector(config: config, promptLength: prompt.count)
        let prefilled = try prefill(prompt: prompt, maxTokens: maxTokens, batch: 256, probe: collector.probe)
        let compression = try select(collector.statistics)
        let out = try generate(from: prefilled, compression: compression, onToken: onToken)
        return (out.tokens, compression.selection, out.cache)
    }
}
