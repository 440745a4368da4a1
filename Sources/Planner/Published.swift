import Policies
// Published accuracy figures (REFERENCES.md), shown next to our measurements with their source.
// Only exact matches are shown: same model, same policy, same budget (or kv-fraction).

/// One published score of a policy at a budget, with the full cache's score in the same table.
public struct PublishedScore: Codable, Sendable, Equatable {
    public var model: String
    public var policy: String
    /// Budget in the design's units (tokens per layer per KV head), when the paper gives one.
    public var budget: Int?
    /// Kept fraction, when the paper gives one instead.
    public var kvFraction: Double?
    public var benchmark: String
    public var score: Double
    public var full: Double
    public var source: String

    enum CodingKeys: String, CodingKey {
        case model, policy, budget, benchmark, score, full, source
        case kvFraction = "kv_fraction"
    }

    /// Relative loss against the full cache.
    public var loss: Double { max(0, (full - score) / full) }
}

public enum Published {
    static let compressKV = "CompressKV paper (arXiv 2508.02401), LongBench 16-task average"
    static let kvCompress = "KV-Compress paper (arXiv 2410.00161), LongBench; its C counts query heads, C/4 here"
    static let chunkKV = "ChunkKV paper (arXiv 2502.00299), GSM8K at 10% kept"

    public static let scores: [PublishedScore] = {
        var s: [PublishedScore] = []
        func add(_ model: String, _ budgets: [Int], _ policy: String, _ scores: [Double], full: Double, _ source: String, _ bench: String) {
            for (b, v) in zip(budgets, scores) {
                s.append(PublishedScore(model: model, policy: policy, budget: b, kvFraction: nil, benchmark: bench, score: v, full: full, source: source))
            }
        }
        let llama = "Llama-3.1-8B-Instruct", mistral = "Mistral-7B-Instruct-v0.3"
        let b5 = [128, 256, 512, 1024, 2048]
        add(llama, b5, "streamingllm", [32.28, 33.92, 35.59, 36.96, 38.99], full: 49.08, compressKV, "LongBench")
        add(llama, b5, "snapkv", [42.58, 45.21, 46.71, 47.82, 48.47], full: 49.08, compressKV, "LongBench")
        add(llama, b5, "pyramidkv", [42.02, 44.36, 46.49, 47.65, 48.34], full: 49.08, compressKV, "LongBench")
        add(llama, b5, "compresskv", [45.10, 46.71, 47.78, 48.24, 48.71], full: 49.08, compressKV, "LongBench")
        let b3 = [128, 256, 2048]
        add(mistral, b3, "streamingllm", [29.85, 31.22, 36.51], full: 47.82, compressKV, "LongBench")
        add(mistral, b3, "snapkv", [40.79, 43.76, 47.05], full: 47.82, compressKV, "LongBench")
        add(mistral, b3, "pyramidkv", [40.29, 43.06, 46.85], full: 47.82, compressKV, "LongBench")
        add(mistral, b3, "compresskv", [43.56, 45.43, 47.55], full: 47.82, compressKV, "LongBench")
        let kvc = [32, 256] // C = 128 and 1024 in KV-Compress's per-query-head units
        add(llama, kvc, "h2o", [41.66, 45.21], full: 46.30, kvCompress, "LongBench")
        add(llama, kvc, "snapkv", [44.19, 47.90], full: 46.30, kvCompress, "LongBench")
        add(llama, kvc, "pyramidkv", [43.66, 48.09], full: 46.30, kvCompress, "LongBench")
        add(llama, kvc, "kvcompress", [45.47, 48.27], full: 46.30, kvCompress, "LongBench")
        for (policy, score) in [("chunkkv", 65.7), ("snapkv", 50.3)] {
            s.append(PublishedScore(model: llama, policy: policy, budget: nil, kvFraction: 0.10, benchmark: "GSM8K", score: score, full: 79.5,
                                    source: chunkKV))
        }
        return s
    }()

    /// The published scores for `model` and `policy` at exactly the budget the user gave: the
    /// same tokens, or the same kv-fraction.
    public static func matching(model: String, policy: String, budget: Budget) -> [PublishedScore] {
        scores.filter { p in
            guard p.model.lowercased() == model.lowercased(), p.policy == policy else { return false }
            switch budget {
            case let .tokens(b): return p.budget == b
            case let .fraction(f): return p.kvFraction.map { abs($0 - f) < 1e-9 } == true
            }
        }
    }
}
