import Engine
import Foundation
import GGUF
import Policies
import TraceFormat

// The recorder (DESIGN.md "What a trace holds"): runs the engine with the full cache on a
// generated task and writes a `.ckvt` trace holding everything replay needs — the prompt and
// generated tokens, the needle and answer spans, the per-(layer, query head) statistics the
// policies read, the decode steps' attention rows, and the cache's values. It knows nothing of
// policies; outcomes of compressed runs are annotations others may append.

/// What the recorder stores, and how.
public struct RecordingOptions: Sendable, Equatable {
    /// Observation windows whose attention sums are stored: the ones the policies read.
    public var windows: [Int] = PolicyKind.statisticWindows().sums
    /// Windows whose squared sums are stored: the ones the policies read (KV-Compress's).
    public var squaredWindows: [Int] = PolicyKind.statisticWindows().squared
    /// Tokens to generate greedily.
    public var maxTokens = 12
    /// Prefill chunk (the compressed runs use the same, so the statistics are the same floats).
    public var batch = 256
    /// Encoding of the statistics: f32, so replay selects exactly what the engine selected.
    public var statisticEncoding: ValueEncoding = .f32
    /// Encoding of decode attention rows and cache values.
    public var vectorEncoding: ValueEncoding = .f16
    /// Raw bytes after which the writer closes a frame even inside a unit of work (a kill loses
    /// at most this much of a unit in progress); units close their frame anyway.
    public var frameSize = 1 << 20
    public init() {}
}

/// The outcome of one recording.
public struct RecordingResult: Sendable {
    public var promptTokens: Int
    public var generated: [Int32]
    public var text: String
    /// Whether the greedy continuation starts with the task's answer.
    public var correct: Bool
    public var summary: TraceWriteSummary
}

/// Progress of a recording, for a progress bar.
public struct RecordingProgress: Sendable {
    /// Tokens processed (prompt tokens prefilled, then one per generated token).
    public var done: Int
    public var total: Int
    public var seconds: Double
}

/// Why a recording cannot run.
public struct RecorderError: LocalizedError, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
    public var errorDescription: String? { description }
}

public final class Recorder {
    public let model: LanguageModel
    public let identity: ModelIdentity
    public var options: RecordingOptions

    /// Hashes the GGUF file (the trace names the exact model).
    public init(model: LanguageModel, options: RecordingOptions = RecordingOptions()) {
        self.model = model
        self.options = options
        let c = model.config
        identity = ModelIdentity(
            name: model.displayName, architecture: c.architecture.rawValue, ggufSHA256: model.file.sha256, layers: c.layers, queryHeads: c.heads,
            kvHeads: c.kvHeads, headDim: c.headDim, contextLength: c.contextLength, slidingWindow: c.slidingWindow,
            globalLayers: c.slidingWindow == nil ? nil : c.pattern.globalIndices(of: c.layers)
        )
    }

    /// Records `task` (prompt already tokenised as `tokens`) to `path`, with the full cache's
    /// outcome and, for `evaluation`, the real compressed runs' outcomes continued from the same
    /// prefill (`onRun` is told each run's label as it finishes).
    /// - Throws: `GenerationError` when the task does not fit the context, `RecorderError` when
    ///   the needle is not in the tokens, `TraceError` when the file cannot be written.
    public func record(task: RetrievalTask, tokens: [Int32], to path: String,
                       progress: (RecordingProgress) -> Void = { _ in },
                       evaluation: Evaluation = Evaluation(), onRun: (String) -> Void = { _ in }) throws -> RecordingResult {
        let c = model.config, n = tokens.count, o = options
        guard n + o.maxTokens <= c.contextLength else {
            throw GenerationError("the task (\(n) tokens) and \(o.maxTokens) tokens to generate exceed the model's context of \(c.contextLength) tokens")
        }
        // A task without one needle sentence (common-word extraction) has no spans.
        let spans = task.needle.isEmpty ? nil : task.spans(in: tokens, tokenizer: model.tokenizer)
        if !task.needle.isEmpty, spans == nil {
            throw RecorderError("the task's needle is not in its tokenised prompt")
        }
        let header = TraceHeader(
            model: identity,
            task: TaskDescription(kind: task.kind, seed: task.seed, promptTokens: n, parameters: [
                "depth": String(task.depth), "answer": task.expected.joined(separator: ","), "max_tokens": String(o.maxTokens),
                "windows": o.windows.map(String.init).joined(separator: ","),
                "squared_windows": o.squaredWindows.map(String.init).joined(separator: ","),
            ]),
            producer: "ckv-sim \(producerVersion)",
            notes: ["engine": "reference engine, greedy, full f16 cache, prefill chunk \(o.batch)", "threads": String(model.threads)]
        )
        let writer = try TraceWriter(path: path, header: header, frameSize: o.frameSize)
        try writer.append(.tokens(role: .prompt, ids: tokens.map { UInt32(bitPattern: $0) }))
        if let spans {
            try writer.append(.span(role: .needle, start: UInt32(spans.needle.lowerBound), end: UInt32(spans.needle.upperBound)))
            try writer.append(.span(role: .answer, start: UInt32(spans.answer.lowerBound), end: UInt32(spans.answer.upperBound)))
        }
        try writer.flush()

        let windows = Array(Set(o.windows + o.squaredWindows)).sorted()
        let collector = StatisticsCollector(config: c, promptLength: n, windows: windows)
        let decodeRows = DecodeRowCollector(config: c, promptLength: n)
        let statistics = collector.probe, rowsProbe = decodeRows.probe
        let probe: AttentionProbe = { layer, head, position, first, weights in
            statistics(layer, head, position, first, weights)
            rowsProbe(layer, head, position, first, weights)
        }
        let clock = ContinuousClock(), start = clock.now
        func seconds() -> Double {
            let d = clock.now - start
            return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
        }
        let total = n + o.maxTokens
        var generatedCount = 0
        // Work is flushed to the file as each unit finishes — the prompt, the statistics once the
        // prompt is in, each decode step's rows, each compressed run's outcome — so a recording
        // killed at any moment keeps every finished unit, and the frame boundaries (like every
        // byte) depend only on the inputs, not on timing. Decode rows: every step but the newest
        // (its row may still be filling) after each token, the rest after generation.
        var rowsWritten = 0
        func writeRows(upTo end: Int) throws {
            while rowsWritten < end {
                for (l, heads) in decodeRows.rows(step: rowsWritten).enumerated() where c.isGlobal(l) {
                    for (h, row) in heads.enumerated() {
                        try writer.append(.decodeAttention(DecodeAttention(layer: UInt16(l), head: UInt16(h), step: UInt32(rowsWritten),
                                                                           encoding: o.vectorEncoding, values: row)))
                    }
                }
                rowsWritten += 1
            }
        }
        // The statistics are written as soon as the prompt is in: a recording interrupted during
        // decode still leaves them readable.
        let writeStatistics = {
            for (l, layer) in collector.statistics.enumerated() {
                for h in 0..<c.heads {
                    func stat(_ kind: StatisticKind, _ w: Int, _ values: [Float]) throws {
                        try writer.append(.headStatistic(HeadStatistic(kind: kind, layer: UInt16(l), head: UInt16(h), window: UInt16(w),
                                                                       encoding: o.statisticEncoding, values: values)))
                    }
                    for w in o.windows where w <= n { try stat(.windowSum, w, layer.windowSums[w]![h]) }
                    for w in o.squaredWindows where w <= n { try stat(.windowSquaredSum, w, layer.windowSquaredSums[w]![h]) }
                    try stat(.accumulated, 0, layer.accumulated[h])
                }
            }
            try writer.flush()
        }
        // Both probes are head-local: the prefill's attention keeps its threads.
        let prefilled = try model.prefill(prompt: tokens, maxTokens: o.maxTokens, batch: o.batch, probe: probe, headLocalProbe: true) { done in
            progress(RecordingProgress(done: done, total: total, seconds: seconds()))
        }
        try writeStatistics()
        var writeFailure: (any Error)?
        let run = try model.generate(from: prefilled, probe: probe) { _ in
            generatedCount += 1
            progress(RecordingProgress(done: n + generatedCount, total: total, seconds: seconds()))
            guard writeFailure == nil else { return }
            do {
                let before = rowsWritten
                try writeRows(upTo: decodeRows.stepCount - 1)
                if rowsWritten > before { try writer.flush() }
            } catch { writeFailure = error }
        }
        if let writeFailure { throw writeFailure }
        try writeRows(upTo: decodeRows.stepCount)
        try writer.append(.tokens(role: .generated, ids: run.tokens.map { UInt32(bitPattern: $0) }))
        for l in 0..<c.layers where c.isGlobal(l) {
            for g in 0..<c.kvHeads {
                try writer.append(.cacheVectors(CacheVectors(kind: .value, layer: UInt16(l), kvHead: UInt16(g), encoding: o.vectorEncoding,
                                                             dimension: c.headDim, values: run.cache.values(layer: l, kvHead: g))))
            }
        }
        let text = model.tokenizer.decode(run.tokens)
        let correct = task.isCorrect(text)
        try writer.append(.annotation(key: RunOutcome.key("full"), value: RunOutcome(correct: correct, tokens: run.tokens, text: text).annotationValue))
        try writer.flush()
        // Each compressed run's outcome is written as it finishes.
        try evaluate(evaluation, task: task, prefilled: prefilled, statistics: collector.statistics, fullCorrect: correct) { label, outcome in
            try writer.append(.annotation(key: RunOutcome.key(label), value: outcome.annotationValue))
            try writer.flush()
            onRun(label)
        }
        let summary = try writer.finish()
        return RecordingResult(promptTokens: n, generated: run.tokens, text: text, correct: correct, summary: summary)
    }
}

/// The real compressed runs recorded with a trace: every policy at every budget, each continued
/// greedily from the full run's prefill (one prefill serves them all).
public struct Evaluation: Sendable {
    public var policies: [PolicyKind]
    public var budgets: [Budget]
    /// CompressKV's head profile (required when `policies` has compresskv).
    public var profile: HeadProfile?
    /// Continual policies go on evicting during decode; false compresses once after the prompt.
    public var continual: Bool
    /// Run the compressed runs only when the full cache answers the whole task (a task the full
    /// cache fails says nothing about compression: the accuracy corpus skips them).
    public var onlyIfFullCorrect: Bool

    public init(policies: [PolicyKind] = [], budgets: [Budget] = [], profile: HeadProfile? = nil, continual: Bool = true,
                onlyIfFullCorrect: Bool = false) {
        self.policies = policies
        self.budgets = budgets
        self.profile = profile
        self.continual = continual
        self.onlyIfFullCorrect = onlyIfFullCorrect
    }
}

extension Recorder {
    /// Runs every run of `evaluation` after `prefilled` and hands `emit` each outcome as it
    /// finishes, labelled `POLICY@BUDGET` (`PolicyKind.runLabel`), policies in order and budgets
    /// within each.
    /// - Throws: `PolicyError` for a budget the policy cannot keep or a missing head profile;
    ///   what `emit` throws.
    func evaluate(_ evaluation: Evaluation, task: RetrievalTask, prefilled: PrefilledPrompt, statistics: [LayerStatistics],
                  fullCorrect: Bool, emit: (String, RunOutcome) throws -> Void) throws {
        let n = prefilled.prompt.count
        for policy in evaluation.policies where !(evaluation.onlyIfFullCorrect && !fullCorrect) {
            for spec in evaluation.budgets {
                let budget = spec.tokens(prompt: n, window: policy.window)
                let compression = try policy.compress(statistics, budget: budget, profile: evaluation.profile, continual: evaluation.continual)
                let out = try model.generate(from: prefilled, compression: compression)
                let text = model.tokenizer.decode(out.tokens)
                try emit(policy.runLabel(budget: budget, continual: evaluation.continual), RunOutcome(correct: task.isCorrect(text), tokens: out.tokens, text: text))
            }
        }
    }
}

/// The version written as a trace's producer.
public let producerVersion = "0.1.0"

