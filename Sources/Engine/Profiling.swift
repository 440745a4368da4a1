import Foundation
import Policies

// CompressKV's two offline profiles of a model (REFERENCES.md, CompressKV):
// - Semantic Retrieval Heads: needle-in-a-haystack probes, scored by the paper's eq. 5
//   (SRS(h) = Σ_t 1[y_t ∈ A] · Σ_{j∈A} a^h_{t,j}), trials kept when the answer's ROUGE-1 recall
//   exceeds 0.5, mean over kept trials; the classic retrieval-head score beside it.
// - Layer eviction errors: with the full cache, at every decode step, ‖O_comp − O_full‖ /
//   (‖O_full‖ + ε) after W_O per layer, O_comp the attention over CompressKV's selection at
//   budget 32 (w 8); summed, L1-normalised per task kind, averaged, normalised again.

/// A needle with its question and the answer text it contains.
public struct Needle: Sendable, Equatable {
    public var sentence: String
    public var question: String
    public var answer: String
}

/// How `identifyRetrievalHeads` probes.
public struct HeadProbeOptions: Sendable {
    public var lengths: [Int] = [512, 1024, 2048]
    public var depths: [Double] = [0, 0.25, 0.5, 0.75, 1]
    /// Most tokens decoded per trial (the paper's 50; it stops at a newline).
    public var maxTokens = 50
    public var needles: [Needle] = HeadProbeOptions.defaultNeedles
    /// Ask as a user turn in this chat format (instruct models), else as a completion ending "Answer:".
    public var chat: ChatTemplate?
    public init() {}

    /// Our own needles (not the paper's text).
    public static let defaultNeedles = [
        Needle(sentence: "The secret ingredient of the harbour soup is smoked paprika from the old mill.",
               question: "What is the secret ingredient of the harbour soup?", answer: "smoked paprika from the old mill"),
        Needle(sentence: "The lighthouse keeper named his grey cat Admiral Whiskers.",
               question: "What did the lighthouse keeper name his cat?", answer: "Admiral Whiskers"),
        Needle(sentence: "The winter market will be held in the blue hall on Fishmonger Street.",
               question: "Where will the winter market be held?", answer: "the blue hall on Fishmonger Street"),
    ]
}

/// The outcome of head identification.
public struct HeadIdentification: Sendable {
    /// Semantic retrieval scores (the profile CompressKV reads).
    public var profile: HeadProfile
    /// Classic retrieval-head scores, same shape.
    public var classic: [[Double]]
    public var trials: Int
    public var keptTrials: Int
}

/// Progress of a profiling run: trials done of total, and a note.
public typealias ProfilingProgress = (_ done: Int, _ total: Int, _ note: String) -> Void

extension LanguageModel {
    /// The model's name for profiles and traces: GGUF `general.name`, else the file name.
    public var displayName: String {
        (try? file.string("general.name")) ?? URL(fileURLWithPath: file.path).deletingPathExtension().lastPathComponent
    }

    /// Runs the needle probes and scores every query head.
    /// - Throws: `GenerationError` when a probe does not fit the context.
    public func identifyRetrievalHeads(_ options: HeadProbeOptions = HeadProbeOptions(), progress: ProfilingProgress = { _, _, _ in }) throws -> HeadIdentification {
        let c = config, L = c.layers, H = c.heads
        var srs = Array(repeating: [Double](repeating: 0, count: H), count: L)
        var classic = srs
        var trialsPerLength = [Int](repeating: 0, count: options.lengths.count), keptPerLength = trialsPerLength
        let total = options.lengths.count * options.depths.count * options.needles.count
        for (li, length) in options.lengths.enumerated() {
            for depth in options.depths {
                for needle in options.needles {
                    let task = try Tasks.needle(needle, tokens: length, depth: depth, tokenizer: tokenizer, chat: options.chat)
                    let tokens = tokenizer.encode(task.prompt)
                    guard let span = task.spans(in: tokens, tokenizer: tokenizer)?.answer else {
                        throw GenerationError("the needle's answer is not in its tokenised prompt")
                    }
                    let n = tokens.count
                    // Per decode step, per (layer, head): attention on the answer span and the top-1 key.
                    var onSpan: [[[Double]]] = [], top: [[[Int]]] = []
                    let probe: AttentionProbe = { layer, head, position, first, weights in
                        guard position >= n - 1 else { return }
                        let step = position - (n - 1)
                        while onSpan.count <= step {
                            onSpan.append(Array(repeating: Array(repeating: 0, count: H), count: L))
                            top.append(Array(repeating: Array(repeating: -1, count: H), count: L))
                        }
                        var sum = 0.0, best = 0
                        for j in 0..<weights.count {
                            if span.contains(first + j) { sum += Double(weights[j]) }
                            if weights[j] > weights[best] { best = j }
                        }
                        onSpan[step][layer][head] = sum
                        top[step][layer][head] = first + best
                    }
                    var cache = makeCache(tokens: n + options.maxTokens)
                    // The prompt without the probe (multi-threaded), its last token with it.
                    _ = prefill(Array(tokens.dropLast()), cache: &cache, chunk: 256)
                    var logits = forward([tokens[n - 1]], cache: &cache, logitsFor: .last, probe: probe)[0]
                    var out: [Int32] = []
                    while out.count < options.maxTokens {
                        let next = Int32(argmax(logits))
                        out.append(next)
                        // Stop at a newline once the answer has begun (leading newlines are skipped over).
                        let begun = tokenizer.decode(out).contains { !$0.isWhitespace }
                        if tokenizer.endOfGeneration.contains(next) || (begun && tokenizer.piece(next).contains(0x0A)) || out.count == options.maxTokens { break }
                        logits = forward([next], cache: &cache, logitsFor: .last, probe: probe)[0]
                    }
                    trialsPerLength[li] += 1
                    let text = tokenizer.decode(out)
                    let recall = rouge1Recall(reference: needle.answer, candidate: text)
                    progress(trialsPerLength.reduce(0, +), total, "\(n) tokens, depth \(depth), expected \(needle.answer.debugDescription): "
                        + "\(text.prefix(60).debugDescription) (ROUGE-1 recall \(String(format: "%.2f", recall)), \(recall > 0.5 ? "kept" : "dropped"))")
                    guard recall > 0.5 else { continue }
                    keptPerLength[li] += 1
                    let spanTokens = span.map { tokens[$0] }
                    for (t, y) in out.enumerated() where t < onSpan.count {
                        let matches = spanTokens.filter { $0 == y }.count
                        for l in 0..<L {
                            for h in 0..<H {
                                if matches > 0 { srs[l][h] += Double(matches) * onSpan[t][l][h] }
                                let k = top[t][l][h]
                                if span.contains(k), tokens[k] == y { classic[l][h] += 1 / Double(span.count) }
                            }
                        }
                    }
                }
            }
        }
        let kept = keptPerLength.reduce(0, +)
        let scale = kept > 0 ? 1 / Double(kept) : 0
        let record = HeadProfile.ProbeRecord(lengths: options.lengths, depths: options.depths, needles: options.needles.count,
                                             trials: trialsPerLength, kept: keptPerLength)
        return HeadIdentification(profile: HeadProfile(model: displayName, scores: srs.map { $0.map { $0 * scale } }, probes: record),
                                  classic: classic.map { $0.map { $0 * scale } }, trials: trialsPerLength.reduce(0, +), keptTrials: kept)
    }

    /// CompressKV's offline per-layer eviction errors, L1-normalised (REFERENCES.md).
    /// - Parameters: `tasks` grouped by kind (each kind normalised, then averaged);
    ///   selection by `profile`'s retrieval heads at `budget` (window `window`).
    public func estimateLayerErrors(profile: HeadProfile, tasks: [RetrievalTask], budget: Int = 32, window: Int = CompressKV.defaultWindow,
                                    maxTokens: Int = 16, progress: ProfilingProgress = { _, _, _ in }) throws -> [Double] {
        let c = config, L = c.layers, H = c.heads, d = c.headDim, group = c.groupSize
        let uniform = HeadProfile(model: profile.model, scores: profile.scores) // no layer budgets: budget 32 everywhere
        let selector = CompressKV(profile: uniform, window: window)
        var perKind: [String: [Double]] = [:]
        for (index, task) in tasks.enumerated() {
            let tokens = tokenizer.encode(task.prompt)
            let n = tokens.count
            let collector = StatisticsCollector(config: c, promptLength: n, windows: [window])
            let decodeRows = DecodeRowCollector(config: c, promptLength: n)
            let statistics = collector.probe, rowsProbe = decodeRows.probe
            let probe: AttentionProbe = { layer, head, position, first, weights in
                statistics(layer, head, position, first, weights)
                rowsProbe(layer, head, position, first, weights)
            }
            let prefilled = try prefill(prompt: tokens, maxTokens: maxTokens, batch: 256, probe: probe, headLocalProbe: true)
            let selection = try selector.select(collector.statistics, budget: budget)
            let run = try generate(from: prefilled, probe: probe)
            var errors = [Double](repeating: 0, count: L)
            // The final cache's values per (global layer, KV head), read out of the cache once.
            let cacheValues = (0..<L).map { l in c.isGlobal(l) ? (0..<c.kvHeads).map { run.cache.values(layer: l, kvHead: $0) } : [] }
            for step in 0..<decodeRows.stepCount {
                let stepRows = decodeRows.rows(step: step)
                for l in 0..<L where c.isGlobal(l) {
                    var full = [Float](repeating: 0, count: H * d), comp = full
                    for h in 0..<H {
                        let g = h / group, row = stepRows[l][h]
                        let values = cacheValues[l][g]
                        let keptPositions = selection.kept[l][g] + Array(n..<(n + step))
                        var mass: Float = 0
                        for j in keptPositions { mass += row[j] }
                        for j in 0..<row.count where row[j] != 0 {
                            for e in 0..<d { full[h * d + e] += row[j] * values[j * d + e] }
                        }
                        if mass > 0 {
                            for j in keptPositions where row[j] != 0 {
                                let w = row[j] / mass
                                for e in 0..<d { comp[h * d + e] += w * values[j * d + e] }
                            }
                        }
                    }
                    var of = [Float](repeating: 0, count: c.hidden), oc = of
                    matmul(recipe.attention(of: l).wo, full, &of, 1)
                    matmul(recipe.attention(of: l).wo, comp, &oc, 1)
                    var diff = 0.0, norm = 0.0
                    for i in 0..<c.hidden {
                        diff += Double(oc[i] - of[i]) * Double(oc[i] - of[i])
                        norm += Double(of[i]) * Double(of[i])
                    }
                    errors[l] += diff.squareRoot() / (norm.squareRoot() + 1e-5)
                }
            }
            perKind[task.kind] = zip(perKind[task.kind] ?? Array(repeating: 0, count: L), errors).map { $0 + $1 }
            progress(index + 1, tasks.count, "\(task.kind) \(n) tokens")
        }
        func l1(_ v: [Double]) -> [Double] {
            let s = v.reduce(0, +)
            return s > 0 ? v.map { $0 / s } : v
        }
        let kinds = perKind.keys.sorted()
        var mean = [Double](repeating: 0, count: L)
        for k in kinds { mean = zip(mean, l1(perKind[k]!)).map { $0 + $1 / Double(kinds.count) } }
        return l1(mean)
    }
}

/// ROUGE-1 recall: the share of the reference's words (lowercased, letters and digits) that the
/// candidate contains, counted with multiplicity.
public func rouge1Recall(reference: String, candidate: String) -> Double {
    func words(_ s: String) -> [String] {
        s.lowercased().split { !($0.isLetter || $0.isNumber) }.map(String.init)
    }
    let ref = words(reference)
    guard !ref.isEmpty else { return 0 }
    var pool = Dictionary(words(candidate).map { ($0, 1) }, uniquingKeysWith: +)
    var hits = 0
    for w in ref where (pool[w] ?? 0) > 0 {
        hits += 1
        pool[w]! -= 1
    }
    return Double(hits) / Double(ref.count)
}
