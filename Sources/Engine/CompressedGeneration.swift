import Policies

/// Collects, from the attention probe of a prompt's prefill, the statistics the policies read
/// (`LayerStatistics`): per layer and query head, the attention each prompt position received
/// from the last w queries (summed, and squared then summed) for every w asked, and from all
/// prompt queries.
public final class StatisticsCollector: @unchecked Sendable {
    public let promptLength: Int
    public let windows: [Int]
    var sums: [[Int: [[Float]]]]
    var squares: [[Int: [[Float]]]]
    var accumulated: [[[Float]]]
    let config: ModelConfig

    /// - Parameter windows: the windows to collect (default: every window a policy reads).
    public init(config: ModelConfig, promptLength n: Int, windows: [Int] = StatisticsCollector.policyWindows) {
        self.config = config
        promptLength = n
        self.windows = windows.filter { $0 <= n }
        let zero = [[Float]](repeating: [Float](repeating: 0, count: n), count: config.heads)
        sums = Array(repeating: Dictionary(uniqueKeysWithValues: self.windows.map { ($0, zero) }), count: config.layers)
        squares = sums
        accumulated = Array(repeating: zero, count: config.layers)
    }

    /// The windows the policies read, plain or squared (`PolicyKind.windowsRead`).
    public static let policyWindows: [Int] = {
        let read = PolicyKind.statisticWindows()
        return Array(Set(read.sums + read.squared)).sorted()
    }()

    /// The probe to pass to `prefill` (it runs the attention single-threaded while attached).
    public var probe: AttentionProbe {
        { [self] layer, head, position, first, weights in
            guard position < promptLength else { return }
            let fromEnd = promptLength - position // 1 for the last prompt query
            let count = min(weights.count, promptLength - first)
            for j in 0..<count { accumulated[layer][head][first + j] += weights[j] }
            for w in windows where fromEnd <= w { // the windows this query is in
                for j in 0..<count {
                    sums[layer][w]![head][first + j] += weights[j]
                    squares[layer][w]![head][first + j] += weights[j] * weights[j]
                }
            }
        }
    }

    /// The statistics, one per layer.
    public var statistics: [LayerStatistics] {
        (0..<config.layers).map { l in
            LayerStatistics(keys: promptLength, queryHeads: config.heads, kvHeads: config.kvHeads, windowSums: sums[l],
                            windowSquaredSums: squares[l], accumulated: accumulated[l], isGlobal: config.isGlobal(l))
        }
    }
}

/// Collects the attention rows of the decode steps on the global layers: step s is the query at
/// position n − 1 + s (step 0 is the last prompt query, which produces the first generated
/// token); each row covers keys 0 … n − 1 + s (keys a sliding window masked get 0).
public final class DecodeRowCollector: @unchecked Sendable {
    public let promptLength: Int
    let config: ModelConfig
    /// step → layer → query head → weights; empty for sliding-window layers.
    public private(set) var rows: [[[[Float]]]] = []

    public init(config: ModelConfig, promptLength n: Int) {
        self.config = config
        promptLength = n
    }

    /// The probe to pass to `prefill` and `generate(from:)`.
    public var probe: AttentionProbe {
        { [self] layer, head, position, first, weights in
            guard position >= promptLength - 1, config.isGlobal(layer) else { return }
            let step = position - (promptLength - 1)
            while rows.count <= step {
                rows.append(Array(repeating: Array(repeating: [], count: config.heads), count: config.layers))
            }
            var row = [Float](repeating: 0, count: position + 1)
            for j in 0..<weights.count { row[first + j] = weights[j] }
            rows[step][layer][head] = row
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
