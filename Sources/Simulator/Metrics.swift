import Histogram

/// Percentiles of a distribution: latencies in milliseconds, or counts (sequences per step).
public struct Percentiles: Codable, Equatable, Sendable {
    public var p50: Double
    public var p90: Double
    public var p99: Double
    public var mean: Double
    public var max: Double

    /// `sum`: the exact sum of the recorded microseconds (HdrHistogram's own mean walks every
    /// bucket, which dominated short runs).
    /// `scale`: units per recorded value (1000 µs per ms; 1 for counts).
    init(_ h: Histogram<UInt64>, sum: Double, scale: Double = 1000) {
        func ms(_ us: UInt64) -> Double { Double(us) / scale }
        if h.totalCount == 0 {
            p50 = 0; p90 = 0; p99 = 0; mean = 0; max = 0
        } else {
            p50 = ms(h.valueAtPercentile(50))
            p90 = ms(h.valueAtPercentile(90))
            p99 = ms(h.valueAtPercentile(99))
            mean = sum / Double(h.totalCount) / scale
            max = ms(h.max)
        }
    }
}

/// A value over simulated time, downsampled to at most `capacity` buckets: when full, adjacent
/// buckets merge and the bucket width doubles, so memory stays flat however long the run.
public struct TimeSeries: Codable, Equatable, Sendable {
    /// Bucket width, microseconds.
    public private(set) var width: Int64
    /// Time-weighted mean of each bucket.
    public private(set) var values: [Double] = []
    private var weights: [Double] = []
    let capacity: Int

    init(capacity: Int = 256, initialWidth: Int64 = 100_000) {
        self.capacity = capacity
        self.width = initialWidth
    }

    /// Adds `value` held over [start, end).
    mutating func add(_ value: Double, from start: Int64, to end: Int64) {
        var t = start
        while t < end {
            var bucket = Int(t / width)
            while bucket >= capacity {
                merge()
                bucket = Int(t / width)
            }
            let bucketEnd = Int64(bucket + 1) * width
            let stop = min(end, bucketEnd)
            while values.count <= bucket {
                values.append(0)
                weights.append(0)
            }
            let w = Double(stop - t)
            values[bucket] = (values[bucket] * weights[bucket] + value * w) / (weights[bucket] + w)
            weights[bucket] += w
            t = stop
        }
    }

    private mutating func merge() {
        var v: [Double] = [], w: [Double] = []
        var i = 0
        while i < values.count {
            let w0 = weights[i], w1 = i + 1 < values.count ? weights[i + 1] : 0
            let total = w0 + w1
            v.append(total == 0 ? 0 : (values[i] * w0 + (i + 1 < values.count ? values[i + 1] * w1 : 0)) / total)
            w.append(total)
            i += 2
        }
        values = v
        weights = w
        width *= 2
    }

    enum CodingKeys: String, CodingKey {
        case values
        case width = "bucket_us"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        width = try c.decode(Int64.self, forKey: .width)
        values = try c.decode([Double].self, forKey: .values)
        weights = values.map { _ in 1 }
        capacity = 256
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(width, forKey: .width)
        try c.encode(values.map { ($0 * 1000).rounded() / 1000 }, forKey: .values)
    }
}

/// Per-request service-level objectives for goodput: a request counts when it meets every one
/// given (as `vllm bench serve --goodput ttft:… tpot:… e2el:…` counts it), milliseconds.
public struct GoodputSLO: Codable, Equatable, Sendable {
    public var ttftMs: Double?
    public var tpotMs: Double?
    public var e2eMs: Double?

    public init(ttftMs: Double? = nil, tpotMs: Double? = nil, e2eMs: Double? = nil) {
        self.ttftMs = ttftMs
        self.tpotMs = tpotMs
        self.e2eMs = e2eMs
    }

    /// Whether a request with these figures (ms) meets every objective given.
    func met(ttft: Double, tpot: Double, e2e: Double) -> Bool {
        ttft <= (ttftMs ?? .infinity) && tpot <= (tpotMs ?? .infinity) && e2e <= (e2eMs ?? .infinity)
    }

    enum CodingKeys: String, CodingKey {
        case ttftMs = "ttft_ms", tpotMs = "tpot_ms", e2eMs = "e2e_ms"
    }
}

/// Requests meeting every SLO, and their rate over the run.
public struct Goodput: Codable, Equatable, Sendable {
    public var slo: GoodputSLO
    public var requests: Int
    public var requestsPerSecond: Double

    enum CodingKeys: String, CodingKey {
        case slo, requests
        case requestsPerSecond = "requests_per_s"
    }
}

/// Streams a run's measurements: histograms and running sums, no per-request history.
struct MetricsRecorder {
    var ttft = Histogram<UInt64>(highestTrackableValue: 1 << 40, numberOfSignificantValueDigits: .three)
    var tpot = Histogram<UInt64>(highestTrackableValue: 1 << 40, numberOfSignificantValueDigits: .three)
    var e2e = Histogram<UInt64>(highestTrackableValue: 1 << 40, numberOfSignificantValueDigits: .three)
    var itl = Histogram<UInt64>(highestTrackableValue: 1 << 40, numberOfSignificantValueDigits: .three)
    var batch = Histogram<UInt64>(highestTrackableValue: 1 << 20, numberOfSignificantValueDigits: .three)
    var ttftSum = 0.0, tpotSum = 0.0, e2eSum = 0.0, itlSum = 0.0, batchSum = 0.0
    var batchSeries = TimeSeries()
    var kvSeries = TimeSeries()
    /// Whether the batch and KV time series are kept (a plan's many runs need only the percentiles).
    var recordsSeries = true
    var completed = 0
    var rejected = 0
    var preemptions = 0
    var compressions = 0
    var promptTokens = 0
    var outputTokens = 0
    var steps = 0
    var busyTime: Int64 = 0
    var batchTimeSum = 0.0
    var kvTimeSum = 0.0
    var kvPeak = 0.0
    var firstArrival: Int64?
    var lastFinish: Int64 = 0
    /// Goodput's objectives (nil: not counted) and the requests that met them.
    var slo: GoodputSLO?
    var good = 0
    /// Prompt tokens of first admissions, and those found in the prefix cache (nil: caching off).
    var prefix: PrefixCacheStats?
    /// KV bytes a decode replica received from prefill replicas, and how many requests' KV.
    var transferredBytes = 0.0
    var transfers = 0

    mutating func step(start: Int64, end: Int64, batchSize: Int, kvUtilisation: Double) {
        steps += 1
        let dt = end - start
        busyTime += dt
        batchTimeSum += Double(batchSize) * Double(dt)
        kvTimeSum += kvUtilisation * Double(dt)
        kvPeak = max(kvPeak, kvUtilisation)
        batch.record(UInt64(batchSize))
        batchSum += Double(batchSize)
        if recordsSeries {
            batchSeries.add(Double(batchSize), from: start, to: end)
            kvSeries.add(kvUtilisation, from: start, to: end)
        }
    }

    /// `count` decoded tokens each `gap` µs after its sequence's previous one (a recompute's gap included).
    mutating func token(gap: Int64, count: UInt64 = 1) {
        let g = UInt64(max(0, gap))
        _ = itl.record(g, count: count)
        itlSum += Double(g) * Double(count)
    }

    mutating func finish(arrival: Int64, firstToken: Int64, end: Int64, prompt: Int, output: Int) {
        completed += 1
        promptTokens += prompt
        outputTokens += output
        let t = UInt64(max(0, firstToken - arrival)), e = UInt64(max(0, end - arrival))
        ttft.record(t)
        e2e.record(e)
        ttftSum += Double(t)
        e2eSum += Double(e)
        var p: UInt64 = 0
        if output > 1 {
            p = UInt64(max(0, (end - firstToken) / Int64(output - 1)))
            tpot.record(p)
            tpotSum += Double(p)
        }
        if let slo, slo.met(ttft: Double(t) / 1000, tpot: Double(p) / 1000, e2e: Double(e) / 1000) { good += 1 }
        lastFinish = max(lastFinish, end)
    }
}

/// The outcome of one simulation, ready to render (all times in ms or s as named).
public struct SimulationResult: Codable, Equatable, Sendable {
    public var requests: Int
    public var completed: Int
    public var rejected: Int
    public var preemptions: Int
    public var compressions: Int
    public var steps: Int
    /// Simulated seconds from the first arrival to the last completion.
    public var durationSeconds: Double
    public var requestsPerSecond: Double
    public var outputTokensPerSecond: Double
    public var totalTokensPerSecond: Double
    public var ttftMs: Percentiles
    public var tpotMs: Percentiles
    public var e2eMs: Percentiles
    /// Inter-token latency: the gap before each token after a request's first, as
    /// `vllm bench serve` measures ITL.
    public var itlMs: Percentiles
    /// Sequences per engine step (each step counted once): p50/p90/p99, mean and max.
    public var batchPercentiles: Percentiles
    public var meanBatch: Double
    public var maxBatch: Int
    public var meanKVUtilisation: Double
    public var peakKVUtilisation: Double
    public var batchOverTime: TimeSeries
    public var kvUtilisationOverTime: TimeSeries
    /// Requests meeting every objective given to the run, per second of it (nil: none given).
    public var goodput: Goodput?
    /// The prefix cache's hits (nil: prefix caching off).
    public var prefixCache: PrefixCacheStats?
    /// Disaggregated serving: the KV decode replicas received from prefill replicas (nil: colocated).
    public var kvTransfer: KVTransferStats?

    enum CodingKeys: String, CodingKey {
        case requests, completed, rejected, preemptions, compressions, steps
        case durationSeconds = "duration_s"
        case requestsPerSecond = "requests_per_s"
        case outputTokensPerSecond = "output_tokens_per_s"
        case totalTokensPerSecond = "total_tokens_per_s"
        case ttftMs = "ttft_ms"
        case tpotMs = "tpot_ms"
        case e2eMs = "e2e_ms"
        case itlMs = "itl_ms"
        case batchPercentiles = "batch_per_step"
        case meanBatch = "mean_batch"
        case maxBatch = "max_batch"
        case meanKVUtilisation = "mean_kv_utilisation"
        case peakKVUtilisation = "peak_kv_utilisation"
        case batchOverTime = "batch_over_time"
        case kvUtilisationOverTime = "kv_utilisation_over_time"
        case goodput
        case prefixCache = "prefix_cache"
        case kvTransfer = "kv_transfer"
    }

    init(_ m: MetricsRecorder, requests: Int) {
        self.requests = requests
        completed = m.completed
        rejected = m.rejected
        preemptions = m.preemptions
        compressions = m.compressions
        steps = m.steps
        let span = Double(m.lastFinish - (m.firstArrival ?? 0)) / 1e6
        durationSeconds = span
        requestsPerSecond = span > 0 ? Double(m.completed) / span : 0
        outputTokensPerSecond = span > 0 ? Double(m.outputTokens) / span : 0
        totalTokensPerSecond = span > 0 ? Double(m.outputTokens + m.promptTokens) / span : 0
        ttftMs = Percentiles(m.ttft, sum: m.ttftSum)
        tpotMs = Percentiles(m.tpot, sum: m.tpotSum)
        e2eMs = Percentiles(m.e2e, sum: m.e2eSum)
        itlMs = Percentiles(m.itl, sum: m.itlSum)
        batchPercentiles = Percentiles(m.batch, sum: m.batchSum, scale: 1)
        meanBatch = m.busyTime > 0 ? m.batchTimeSum / Double(m.busyTime) : 0
        maxBatch = Int(m.batch.totalCount > 0 ? m.batch.max : 0)
        meanKVUtilisation = m.busyTime > 0 ? m.kvTimeSum / Double(m.busyTime) : 0
        peakKVUtilisation = m.kvPeak
        batchOverTime = m.batchSeries
        kvUtilisationOverTime = m.kvSeries
        goodput = m.slo.map { Goodput(slo: $0, requests: m.good, requestsPerSecond: span > 0 ? Double(m.good) / span : 0) }
        prefixCache = m.prefix
        kvTransfer = m.transfers > 0 ? KVTransferStats(requests: m.transfers, bytes: m.transferredBytes) : nil
    }
}

/// The KV sent from prefill to decode replicas: requests and bytes (after compression).
public struct KVTransferStats: Codable, Equatable, Sendable {
    public var requests: Int
    public var bytes: Double

    /// Bytes per request.
    public var meanBytes: Double { requests > 0 ? bytes / Double(requests) : 0 }
}

/// How much of the prompts the prefix cache served: over each request's first admission (a
/// readmission after preemption finding its own blocks again is not counted), the prompt tokens
/// and those found cached, which are not computed.
public struct PrefixCacheStats: Codable, Equatable, Sendable {
    public var promptTokens: Int
    public var hitTokens: Int

    public init(promptTokens: Int, hitTokens: Int) {
        self.promptTokens = promptTokens
        self.hitTokens = hitTokens
    }

    /// Cached tokens ÷ prompt tokens (0 with no prompts).
    public var hitRate: Double { promptTokens > 0 ? Double(hitTokens) / Double(promptTokens) : 0 }

    enum CodingKeys: String, CodingKey {
        case promptTokens = "prompt_tokens"
        case hitTokens = "hit_tokens"
    }

    static func + (a: Self, b: Self) -> Self {
        Self(promptTokens: a.promptTokens + b.promptTokens, hitTokens: a.hitTokens + b.hitTokens)
    }
}
