import Foundation
import SeededRandom

/// One request as the simulator sees it.
public struct Request: Equatable, Sendable {
    public var id: Int
    /// Arrival time, microseconds from the start.
    public var arrival: Int64
    public var promptTokens: Int
    public var outputTokens: Int
    /// The prompt's prefix identity: one hash per `hashBlockTokens` prompt tokens from the start,
    /// equal across requests that share that prefix (a hash names the block and everything before
    /// it, as Mooncake's `hash_ids` and vLLM's block hashes do); empty when unknown. It may cover
    /// only the prompt's first blocks (a synthetic shared system prompt). vLLM V1's prefix cache
    /// reuses the full blocks (`PrefixCache`).
    public var blockHashes: [Int]
    /// Prompt tokens per hash (Mooncake: 512).
    public var hashBlockTokens: Int

    public init(id: Int, arrival: Int64, promptTokens: Int, outputTokens: Int, blockHashes: [Int] = [], hashBlockTokens: Int = 512) {
        precondition(hashBlockTokens > 0, "a prefix block holds at least one token")
        self.id = id
        self.arrival = arrival
        self.promptTokens = promptTokens
        self.outputTokens = outputTokens
        self.blockHashes = blockHashes
        self.hashBlockTokens = hashBlockTokens
    }

    /// Hashes of the prompt's full prefix blocks (a last partial block is not reused).
    var fullPrefixBlocks: Int { min(blockHashes.count, promptTokens / hashBlockTokens) }
}

/// A stream of requests in arrival order. Sources generate lazily, so a long run holds only the
/// requests in flight.
public protocol RequestSource {
    mutating func next() -> Request?
}

/// A token-length distribution.
public enum LengthDistribution: Equatable, Sendable {
    case fixed(Int)
    case uniform(min: Int, max: Int)
    /// Log-normal with the given median and σ of log-length, clipped to [min, max].
    case lognormal(median: Double, sigma: Double, min: Int, max: Int)
    /// Normal, clipped to [min, max].
    case normal(mean: Double, sd: Double, min: Int, max: Int)

    /// The largest length it can produce.
    public var maximum: Int {
        switch self {
        case let .fixed(n): n
        case let .uniform(_, hi), let .lognormal(_, _, _, hi), let .normal(_, _, _, hi): hi
        }
    }

    public var minimum: Int {
        switch self {
        case let .fixed(n): n
        case let .uniform(lo, _), let .lognormal(_, _, lo, _), let .normal(_, _, lo, _): lo
        }
    }

    func sample(_ rng: inout SplitMix64) -> Int {
        switch self {
        case let .fixed(n):
            return n
        case let .uniform(lo, hi):
            return lo + Int(rng.next() % UInt64(hi - lo + 1))
        case let .lognormal(median, sigma, lo, hi):
            return clamped((median * Foundation.exp(sigma * gaussian(&rng))).rounded(), lo, hi)
        case let .normal(mean, sd, lo, hi):
            return clamped((mean + sd * gaussian(&rng)).rounded(), lo, hi)
        }
    }
}

/// `x` clamped to [lo, hi] before it becomes an integer (a draw far in a tail is no trap).
private func clamped(_ x: Double, _ lo: Int, _ hi: Int) -> Int {
    guard x.isFinite else { return x > 0 ? hi : lo }
    return Int(Swift.min(Swift.max(x, Double(lo)), Double(hi)))
}

/// `seconds` as whole microseconds, saturating far beyond any simulated run (a century either way).
private func microseconds(_ seconds: Double) -> Int64 {
    guard seconds.isFinite else { return seconds > 0 ? 3_200_000_000_000_000 : -3_200_000_000_000_000 }
    return Int64(Swift.min(Swift.max((seconds * 1e6).rounded(), -3.2e15), 3.2e15))
}

/// How requests arrive.
public enum ArrivalProcess: Equatable, Sendable {
    /// All at t = 0 (vLLM `benchmark_throughput`).
    case batch
    /// Exponential gaps at `rate` requests/s.
    case poisson(rate: Double)
    /// Gamma-distributed gaps with mean 1/rate and coefficient of variation `cv` (bursty when > 1).
    case gamma(rate: Double, cv: Double)
    /// Evenly spaced at `rate` requests/s (GuideLLM's `constant` profile).
    case constant(rate: Double)
}

/// System prompts many requests share: each request's prompt starts with one of `variants`
/// prompts of `tokens` tokens (drawn uniformly, seeded) and goes on with its own tokens. The
/// shared part carries prefix hashes per `blockTokens` (vLLM's 16-token blocks), the same for
/// every request with that variant; the request's own part carries none.
public struct SharedPrefix: Equatable, Sendable {
    public var tokens: Int
    public var variants: Int
    public var blockTokens: Int

    public init(tokens: Int, variants: Int, blockTokens: Int = 16) {
        precondition(tokens > 0 && variants > 0 && blockTokens > 0, "a shared prefix needs tokens, variants and a block size")
        self.tokens = tokens
        self.variants = variants
        self.blockTokens = blockTokens
    }

    /// The hashes of variant `v`'s full blocks (distinct across variants).
    func hashes(variant v: Int) -> [Int] { (0..<(tokens / blockTokens)).map { v << 32 | $0 } }
}

/// Multi-turn conversations: each request is a turn of a session whose prompt is everything
/// before it (the session's earlier prompts and answers, after its shared prefix if any) and its
/// own new `prompt` tokens. Arrivals are dealt to `concurrent` open sessions in turn, so a
/// session's next turn comes `concurrent` arrivals after its last; after `turns` turns the slot
/// starts a new session. The whole stream carries prefix hashes per `blockTokens`, so a turn
/// finds its session's history cached (its previous prompt's blocks; vLLM also caches the
/// answer's, which ckv-sim does not publish).
public struct Sessions: Equatable, Sendable {
    public var turns: Int
    public var concurrent: Int
    public var blockTokens: Int

    public init(turns: Int, concurrent: Int, blockTokens: Int = 16) {
        precondition(turns > 0 && concurrent > 0 && blockTokens > 0, "sessions need turns, concurrent sessions and a block size")
        self.turns = turns
        self.concurrent = concurrent
        self.blockTokens = blockTokens
    }

    /// The hash of block `j` of session `id`'s token stream (apart from every shared prefix's).
    func hash(session id: Int, block j: Int) -> Int { 1 << 62 | id << 24 | j }
}

/// Synthetic requests: an arrival process and two length distributions, seeded.
public struct SyntheticSource: RequestSource {
    public var arrivals: ArrivalProcess
    public var prompt: LengthDistribution
    public var output: LengthDistribution
    public var count: Int
    /// A system prompt before each request's own `prompt` tokens (nil: none).
    public var sharedPrefix: SharedPrefix?
    /// Multi-turn sessions (nil: every request stands alone).
    public var sessions: Sessions?
    private var prefixRNG: SplitMix64
    /// Per open session slot: its id, shared-prefix variant, turns so far and history tokens.
    private var slots: [(id: Int, variant: Int, turn: Int, history: Int)?] = []
    private var sessionsStarted = 0
    /// (prompt, output) pairs a benchmark ran (`vllm bench serve`'s per-request lengths): with as
    /// many pairs as requests they are taken in order, with fewer each request draws one (seeded);
    /// nil draws from `prompt` and `output`.
    public var pairs: [(prompt: Int, output: Int)]?
    private var arrivalRNG: SplitMix64
    private var lengthRNG: SplitMix64
    private var produced = 0
    private var clock = 0.0

    public init(arrivals: ArrivalProcess, prompt: LengthDistribution, output: LengthDistribution, count: Int, seed: UInt64,
                pairs: [(prompt: Int, output: Int)]? = nil, sharedPrefix: SharedPrefix? = nil, sessions: Sessions? = nil) {
        self.arrivals = arrivals
        self.sharedPrefix = sharedPrefix
        self.sessions = sessions
        slots = Array(repeating: nil, count: sessions?.concurrent ?? 0)
        self.pairs = pairs.flatMap { $0.isEmpty ? nil : $0 }
        self.prompt = prompt
        self.output = output
        self.count = count
        let root = SplitMix64(seed: seed)
        arrivalRNG = root.derived("arrivals")
        lengthRNG = root.derived("lengths")
        prefixRNG = root.derived("prefix")
    }

    public mutating func next() -> Request? {
        guard produced < count else { return nil }
        switch arrivals {
        case .batch:
            break
        case let .poisson(rate):
            clock += -Foundation.log(1 - arrivalRNG.nextUnit()) / rate
        case let .gamma(rate, cv):
            let shape = 1 / (cv * cv)
            clock += gammaSample(shape: shape, &arrivalRNG) / (shape * rate)
        case let .constant(rate):
            if produced > 0 { clock += 1 / rate }
        }
        defer { produced += 1 }
        var r: Request
        if let pairs {
            let p = pairs.count == count ? pairs[produced] : pairs[Int(lengthRNG.next() % UInt64(pairs.count))]
            r = Request(id: produced, arrival: microseconds(clock), promptTokens: max(1, p.prompt), outputTokens: max(1, p.output))
        } else {
            r = Request(id: produced, arrival: microseconds(clock), promptTokens: prompt.sample(&lengthRNG),
                        outputTokens: max(1, output.sample(&lengthRNG)))
        }
        if let sessions {
            let k = produced % sessions.concurrent
            if slots[k] == nil || slots[k]!.turn == sessions.turns {
                let variant = sharedPrefix.map { Int(prefixRNG.next() % UInt64($0.variants)) } ?? 0
                slots[k] = (sessionsStarted, variant, 0, sharedPrefix?.tokens ?? 0)
                sessionsStarted += 1
            }
            let slot = slots[k]!, bt = sessions.blockTokens
            r.promptTokens += slot.history
            // The stream's blocks: the shared prefix's own hashes where it covers whole blocks, the session's after.
            let shared = sharedPrefix.map { $0.blockTokens == bt ? $0.hashes(variant: slot.variant) : [] } ?? []
            r.blockHashes = (0..<(r.promptTokens / bt)).map { j in j < shared.count ? shared[j] : sessions.hash(session: slot.id, block: j) }
            r.hashBlockTokens = bt
            slots[k] = (slot.id, slot.variant, slot.turn + 1, r.promptTokens + r.outputTokens)
        } else if let shared = sharedPrefix {
            let v = Int(prefixRNG.next() % UInt64(shared.variants))
            r.promptTokens += shared.tokens
            r.blockHashes = shared.hashes(variant: v)
            r.hashBlockTokens = shared.blockTokens
        }
        return r
    }
}

/// The request-log formats ckv-sim reads.
public enum LogFormat: String, Codable, Sendable, CaseIterable {
    /// Azure LLM inference trace 2023: CSV `TIMESTAMP,ContextTokens,GeneratedTokens`,
    /// timestamps `YYYY-MM-DD HH:MM:SS.fffffff`.
    case azure
    /// Mooncake FAST'25 JSONL: `{"timestamp": ms, "input_length": n, "output_length": n, "hash_ids": […]}`.
    case mooncake
}

/// Why a workload cannot be read.
public struct WorkloadError: LocalizedError, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
    public var errorDescription: String? { description }
}

/// A replayed request log, with its times scaled.
public struct LogSource: RequestSource {
    public let requests: [Request]
    private var position = 0

    /// Reads `path` in `format`.
    /// - Parameters:
    ///   - timeScale: multiplies every inter-arrival time (0.5 replays twice as fast).
    ///   - limit: keep at most this many requests (from `offset`).
    /// - Throws: `WorkloadError` naming the file and line of the first malformed row.
    public init(path: String, format: LogFormat, timeScale: Double = 1, offset: Int = 0, limit: Int? = nil) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw WorkloadError("\(path): cannot read the request log")
        }
        let text = String(decoding: data, as: UTF8.self)
        var rows: [(Double, Int, Int)] = []
        var hashes: [[Int]] = []
        var lineNumber = 0
        var skipped = 0
        // "\r\n" is one Character in Swift: split on both line ends.
        for line in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            lineNumber += 1
            if line.isEmpty { continue }
            if skipped < offset + (format == .azure ? 1 : 0) {
                skipped += 1
                if format == .azure, skipped == 1 {
                    guard line.hasPrefix("TIMESTAMP,") else {
                        throw WorkloadError("\(path):1: expected the Azure header TIMESTAMP,ContextTokens,GeneratedTokens, found \(line.prefix(60))")
                    }
                }
                continue
            }
            if let limit, rows.count >= limit { break }
            switch format {
            case .azure:
                let f = line.split(separator: ",")
                guard f.count == 3, let t = Self.azureSeconds(f[0]), let p = Int(f[1]), let o = Int(f[2]) else {
                    throw WorkloadError("\(path):\(lineNumber): expected TIMESTAMP,ContextTokens,GeneratedTokens, found \(line.prefix(80))")
                }
                rows.append((t, p, o))
                hashes.append([])
            case .mooncake:
                guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                      let t = (obj["timestamp"] as? NSNumber)?.doubleValue, t.isFinite, abs(t) < 1e15,
                      let p = obj["input_length"] as? Int, let o = obj["output_length"] as? Int else {
                    throw WorkloadError("\(path):\(lineNumber): expected a JSON object with timestamp, input_length and output_length, found \(line.prefix(80))")
                }
                var ids: [Int] = []
                if let raw = obj["hash_ids"] {
                    guard let list = raw as? [Int] else {
                        throw WorkloadError("\(path):\(lineNumber): hash_ids must be a list of integers, found \(line.prefix(80))")
                    }
                    ids = list
                }
                rows.append((t / 1000, p, o))
                hashes.append(ids)
            }
            if let last = rows.last, !(0...Scenario.maxTokens).contains(last.1) || !(0...Scenario.maxTokens).contains(last.2) {
                throw WorkloadError("\(path):\(lineNumber): token counts must be between 0 and \(Scenario.maxTokens), found \(last.1) and \(last.2)")
            }
        }
        guard let first = rows.first else { throw WorkloadError("\(path): no requests after offset \(offset)") }
        requests = rows.enumerated().map { i, r in
            Request(id: i, arrival: microseconds((r.0 - first.0) * timeScale), promptTokens: max(1, r.1), outputTokens: max(1, r.2),
                    blockHashes: hashes[i])
        }
        for i in 1..<max(requests.count, 1) where requests[i].arrival < requests[i - 1].arrival {
            throw WorkloadError("\(path): request \(i + offset + 1) arrives before the one before it (the log must be sorted by time)")
        }
    }

    public mutating func next() -> Request? {
        guard position < requests.count else { return nil }
        defer { position += 1 }
        return requests[position]
    }

    /// The log's mean arrival rate as replayed, requests per second: its requests over the span
    /// from the first arrival to the last (nil with fewer than two, or all at once).
    public var meanRate: Double? {
        guard requests.count > 1, let last = requests.last, last.arrival > 0 else { return nil }
        return Double(requests.count) / (Double(last.arrival) / 1_000_000)
    }

    /// Seconds since about 2000 of `YYYY-MM-DD HH:MM:SS.fffffff` (only differences matter; a
    /// recent origin keeps sub-microsecond resolution in a Double).
    static func azureSeconds(_ s: Substring) -> Double? {
        let parts = s.split(separator: " ")
        guard parts.count == 2 else { return nil }
        let date = parts[0].split(separator: "-").compactMap { Int($0) }
        let time = parts[1].split(separator: ":")
        guard date.count == 3, time.count == 3, let h = Int(time[0]), let m = Int(time[1]), let sec = Double(time[2]) else { return nil }
        guard (1900...9999).contains(date[0]), (1...12).contains(date[1]), (1...31).contains(date[2]), (0...23).contains(h), (0...59).contains(m),
              sec >= 0, sec < 62 else { return nil }
        // Days from civil (H. Hinnant's algorithm), enough for differences across month ends.
        let y = date[1] <= 2 ? date[0] - 1 : date[0]
        let era = y / 400
        let yoe = y - era * 400
        let mp = (date[1] + 9) % 12
        let doy = (153 * mp + 2) / 5 + date[2] - 1
        let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 730_000
        return Double(days) * 86400 + Double(h * 3600 + m * 60) + sec
    }
}

// MARK: - Sampling helpers


/// Standard normal by Box–Muller.
func gaussian(_ rng: inout SplitMix64) -> Double {
    let u1 = max(rng.nextUnit(), 1e-300), u2 = rng.nextUnit()
    return (-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * .pi * u2)
}

/// Gamma(shape, 1) by Marsaglia and Tsang (2000); shape < 1 through the boost x·U^(1/shape).
func gammaSample(shape: Double, _ rng: inout SplitMix64) -> Double {
    if shape < 1 {
        return gammaSample(shape: shape + 1, &rng) * Foundation.pow(max(rng.nextUnit(), 1e-300), 1 / shape)
    }
    let d = shape - 1.0 / 3, c = 1 / (9 * d).squareRoot()
    while true {
        var x = 0.0, v = 0.0
        repeat {
            x = gaussian(&rng)
            v = 1 + c * x
        } while v <= 0
        v = v * v * v
        let u = rng.nextUnit()
        if u < 1 - 0.0331 * x * x * x * x || Foundation.log(u) < 0.5 * x * x + d * (1 - v + Foundation.log(v)) { return d * v }
    }
}
