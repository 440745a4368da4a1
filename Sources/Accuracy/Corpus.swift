#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Engine
import Foundation
import Policies
import Recorder
import Replay
import SeededRandom
import TraceFormat

// The accuracy corpus (issue #19): generated tasks of every kind at several lengths, each
// prefilled once with the full cache and continued for real by every policy at every budget, with
// the replay proxies of the same selections. The results file is JSON Lines: a settings line, then
// one line per finished sample, appended and synced as each finishes, so an interrupted run loses
// at most the sample in progress and resumes where it stopped.

/// What a corpus run is defined by. A run resumed into an existing file must have the same.
public struct CorpusSettings: Codable, Equatable, Sendable {
    /// The model's display name and its GGUF's sha256.
    public var model: String
    public var ggufSHA256: String
    public var kinds: [TaskKind]
    /// Prompt lengths in tokens, and the samples at each (same order).
    public var lengths: [Int]
    public var samples: [Int]
    public var policies: [PolicyKind]
    /// Budgets as fractions of each prompt's KV.
    public var fractions: [Double]
    public var seed: UInt64
    /// Prompts wrapped as a user turn in the model's chat format.
    public var chat: Bool
    /// StreamingLLM, H2O and KV-Compress go on evicting during decode.
    public var continual: Bool

    public init(model: String, ggufSHA256: String, kinds: [TaskKind], lengths: [Int], samples: [Int], policies: [PolicyKind],
                fractions: [Double], seed: UInt64, chat: Bool, continual: Bool) {
        self.model = model
        self.ggufSHA256 = ggufSHA256
        self.kinds = kinds
        self.lengths = lengths
        self.samples = samples
        self.policies = policies
        self.fractions = fractions
        self.seed = seed
        self.chat = chat
        self.continual = continual
    }

    enum CodingKeys: String, CodingKey {
        case model, kinds, lengths, samples, policies, fractions, seed, chat, continual
        case ggufSHA256 = "gguf_sha256"
    }

    /// The samples the issue asks for: 30 per length up to 8k tokens, 12 beyond.
    public static func defaultSamples(for lengths: [Int]) -> [Int] { lengths.map { $0 <= 8192 ? 30 : 12 } }

    /// Which samples the run holds: its kinds, lengths, samples per length and seed.
    public var samplePlan: SamplePlan { SamplePlan(kinds: kinds, lengths: lengths, samples: samples, seed: seed) }

    /// Every sample of the run, in the order it runs (`SamplePlan.keys`).
    public var plan: [SampleKey] { samplePlan.keys }

    /// The task generator's seed of a sample (`SamplePlan.seed(of:)`).
    public func seed(of key: SampleKey) -> UInt64 { samplePlan.seed(of: key) }

    /// A sample's needle depth (`SamplePlan.depth(of:)`).
    public func depth(of key: SampleKey) -> Double { samplePlan.depth(of: key) }

    /// The first setting that differs from `other`, for a refusal to resume.
    func difference(from other: CorpusSettings) -> String? {
        let mine = (try? JSONSerialization.jsonObject(with: JSONEncoder().encode(self))) as? [String: Any] ?? [:]
        let theirs = (try? JSONSerialization.jsonObject(with: JSONEncoder().encode(other))) as? [String: Any] ?? [:]
        for key in mine.keys.sorted() where !(mine[key].map { "\($0)" } == theirs[key].map { "\($0)" }) {
            return "\(key) is \(theirs[key].map { "\($0)" } ?? "absent") in the file, \(mine[key].map { "\($0)" } ?? "absent") now"
        }
        return nil
    }
}

/// One finished sample: the full cache's answer and every compressed run's.
public struct CorpusSample: Codable, Equatable, Sendable {
    public var key: SampleKey
    public var seed: UInt64
    public var depth: Double
    public var promptTokens: Int
    public var expected: [String]
    /// The full cache's score (0 … 1) and continuation.
    public var fullScore: Double
    public var fullText: String
    public var runs: [CorpusRun]

    enum CodingKeys: String, CodingKey {
        case key, seed, depth, expected, runs
        case promptTokens = "prompt_tokens"
        case fullScore = "full_score"
        case fullText = "full_text"
    }
}

/// One policy at one budget on one sample: the real run's score and the replay proxies.
public struct CorpusRun: Codable, Equatable, Sendable {
    public var policy: PolicyKind
    public var fraction: Double
    /// Tokens per layer per KV head the fraction came to.
    public var budget: Int
    public var score: Double
    public var attentionMass: Double
    public var outputError: Double

    enum CodingKeys: String, CodingKey {
        case policy, fraction, budget, score
        case attentionMass = "attention_mass"
        case outputError = "output_error"
    }
}

/// Why a corpus cannot run or be read.
public struct CorpusError: LocalizedError, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
    public var errorDescription: String? { description }
}

/// A results file: its settings and the samples finished so far.
public struct CorpusFile: Sendable {
    public static let format = "ckv-sim accuracy corpus"
    public static let version = 1

    public var settings: CorpusSettings
    public var samples: [CorpusSample]

    struct Header: Codable {
        var format: String
        var version: Int
        var settings: CorpusSettings
    }

    /// Reads `path`. A last line without its newline (a write cut by an interruption) is ignored.
    /// - Throws: `CorpusError` naming the file and line for a foreign, future or damaged file.
    public static func read(_ path: String) throws -> (file: CorpusFile, validBytes: Int) {
        guard let data = FileManager.default.contents(atPath: path) else { throw CorpusError("\(path): cannot read the file") }
        let bytes = [UInt8](data)
        var lines: [ArraySlice<UInt8>] = []
        var start = 0, validBytes = 0
        for (i, b) in bytes.enumerated() where b == UInt8(ascii: "\n") {
            lines.append(bytes[start..<i])
            start = i + 1
            validBytes = start
        }
        guard let first = lines.first else { throw CorpusError("\(path): line 1: expected the corpus settings line, the file has no complete line") }
        let decoder = JSONDecoder()
        let header: Header
        do { header = try decoder.decode(Header.self, from: Data(first)) } catch {
            throw CorpusError("\(path): line 1: not a corpus settings line (\(Self.describe(error)))")
        }
        guard header.format == format else { throw CorpusError("\(path): line 1: format is '\(header.format)', expected '\(format)'") }
        guard header.version == version else { throw CorpusError("\(path): line 1: version \(header.version) is not supported: this build reads version \(version)") }
        var samples: [CorpusSample] = []
        var seen = Set<SampleKey>()
        let planned = Set(header.settings.plan)
        for (n, line) in lines.enumerated().dropFirst() {
            let sample: CorpusSample
            do { sample = try decoder.decode(CorpusSample.self, from: Data(line)) } catch {
                throw CorpusError("\(path): line \(n + 1): not a corpus sample (\(Self.describe(error)))")
            }
            guard planned.contains(sample.key) else { throw CorpusError("\(path): line \(n + 1): sample \(sample.key) is not in the file's settings") }
            guard seen.insert(sample.key).inserted else { throw CorpusError("\(path): line \(n + 1): sample \(sample.key) appears twice") }
            samples.append(sample)
        }
        return (CorpusFile(settings: header.settings, samples: samples), validBytes)
    }

    /// A decoding error in one line.
    static func describe(_ error: Error) -> String {
        switch error {
        case let DecodingError.keyNotFound(key, _): "missing key '\(key.stringValue)'"
        case let DecodingError.typeMismatch(_, c), let DecodingError.valueNotFound(_, c):
            "wrong type at '\(c.codingPath.map(\.stringValue).joined(separator: "."))'"
        case let DecodingError.dataCorrupted(c):
            c.codingPath.isEmpty ? "not JSON" : "bad value at '\(c.codingPath.map(\.stringValue).joined(separator: "."))': \(c.debugDescription)"
        default: "\(error)"
        }
    }

    static func encodeLine(_ value: some Encodable) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(value) + Data("\n".utf8)
    }
}

/// Runs a corpus on one model.
public final class CorpusRunner {
    public let model: LanguageModel
    public let settings: CorpusSettings
    public let profile: HeadProfile?
    let recorder: Recorder

    /// - Parameter recorder: the model's recorder (it hashed the GGUF; `settings` came from its identity).
    /// - Throws: `CorpusError` when a length and its answer exceed the model's context, or
    ///   CompressKV is asked for without a profile of this model.
    public init(recorder: Recorder, settings: CorpusSettings, profile: HeadProfile?) throws {
        model = recorder.model
        self.settings = settings
        self.profile = profile
        self.recorder = recorder
        let context = model.config.contextLength
        for kind in settings.kinds {
            if let long = settings.lengths.first(where: { $0 + kind.answerTokens > context }) {
                throw CorpusError("--lengths: a \(long)-token \(kind.rawValue) task and its \(kind.answerTokens) answer tokens exceed \(model.displayName)'s context of \(context) tokens")
            }
        }
        if settings.policies.contains(.compressKV) {
            guard let profile else { throw CorpusError("compresskv needs a head profile: --profile FILE.json") }
            guard profile.model == recorder.identity.name else {
                throw CorpusError("the head profile is for \(profile.model); the model is \(recorder.identity.name)")
            }
        }
    }

    /// The settings of a run of `identity`'s model (name and hash filled in).
    public static func settings(model identity: ModelIdentity, kinds: [TaskKind], lengths: [Int], samples: [Int]?, policies: [PolicyKind],
                                fractions: [Double], seed: UInt64, chat: Bool, continual: Bool) -> CorpusSettings {
        CorpusSettings(model: identity.name, ggufSHA256: identity.ggufSHA256 ?? "", kinds: kinds, lengths: lengths,
                              samples: samples ?? CorpusSettings.defaultSamples(for: lengths), policies: policies, fractions: fractions,
                              seed: seed, chat: chat, continual: continual)
    }

    /// Runs every sample not yet in `path` (creating it with the settings line), appending each as it finishes.
    /// - Parameter progress: told each sample as it starts: (samples run so far, samples this run
    ///   has to run, key); `willRun` first gets the keys left, for a weighted ETA.
    /// - Returns: the samples run now.
    /// - Throws: `CorpusError` for a file of other settings or a damaged one; what the engine throws.
    @discardableResult
    public func run(into path: String, scratch: URL, willRun: ([SampleKey]) -> Void = { _ in },
                    progress: (Int, Int, SampleKey) -> Void = { _, _, _ in }) throws -> [CorpusSample] {
        var done = Set<SampleKey>()
        if FileManager.default.fileExists(atPath: path) {
            let (file, validBytes) = try CorpusFile.read(path)
            if let difference = settings.difference(from: file.settings) {
                throw CorpusError("\(path) was run with other settings (\(difference)): resume with the same settings or write to another --out")
            }
            done = Set(file.samples.map(\.key))
            // Drop a line cut by an interruption.
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
            try handle.truncate(atOffset: UInt64(validBytes))
            try handle.close()
        } else {
            let header = CorpusFile.Header(format: CorpusFile.format, version: CorpusFile.version, settings: settings)
            guard FileManager.default.createFile(atPath: path, contents: try CorpusFile.encodeLine(header)) else {
                let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
                let why = FileManager.default.fileExists(atPath: directory) ? "not writable" : "its directory \(directory) does not exist"
                throw CorpusError("\(path): cannot create the file (\(why))")
            }
        }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.seekToEnd()
        let left = settings.plan.filter { !done.contains($0) }
        willRun(left)
        var ran: [CorpusSample] = []
        for (i, key) in left.enumerated() {
            progress(i, left.count, key)
            let sample = try run(key, scratch: scratch)
            try handle.write(contentsOf: try CorpusFile.encodeLine(sample))
            try handle.synchronize()
            ran.append(sample)
        }
        try handle.close()
        try Self.putInPlanOrder(path)
        return ran
    }

    /// A finished file whose samples were appended out of plan order (a resumed run that had
    /// lines removed) is rewritten in plan order, so the same settings always give the same bytes.
    static func putInPlanOrder(_ path: String) throws {
        let (file, _) = try CorpusFile.read(path)
        let plan = file.settings.plan
        guard file.samples.count == plan.count, file.samples.map(\.key) != plan else { return }
        let byKey = Dictionary(uniqueKeysWithValues: file.samples.map { ($0.key, $0) })
        let header = CorpusFile.Header(format: CorpusFile.format, version: CorpusFile.version, settings: file.settings)
        var data = try CorpusFile.encodeLine(header)
        for key in plan { data += try CorpusFile.encodeLine(byKey[key]!) }
        let temporary = path + ".sorting"
        try data.write(to: URL(fileURLWithPath: temporary))
        guard rename(temporary, path) == 0 else { throw CorpusError("\(path): cannot replace the file (\(String(cString: strerror(errno))))") }
    }

    /// One sample: the task, a recording with every compressed run, the replay of the same selections.
    public func run(_ key: SampleKey, scratch: URL) throws -> CorpusSample {
        let seed = settings.seed(of: key), depth = settings.depth(of: key)
        var task = try settings.samplePlan.task(key, tokenizer: model.tokenizer)
        let tokens = try model.promptTokens(for: &task, chat: settings.chat)
        recorder.options.maxTokens = key.kind.answerTokens
        let tracePath = scratch.appendingPathComponent("\(key.kind.rawValue)-\(key.length)-\(key.index).ckvt").path
        defer { try? FileManager.default.removeItem(atPath: tracePath) }
        let evaluation = Evaluation(policies: settings.policies, budgets: settings.fractions.map { .fraction($0) }, profile: profile,
                                    continual: settings.continual, onlyIfFullCorrect: true)
        let result = try recorder.record(task: task, tokens: tokens, to: tracePath, evaluation: evaluation)
        let fullScore = task.score(result.text)
        // A sample the full cache fails is reported, not scored: no compressed runs, no replay.
        guard fullScore == 1 else {
            return CorpusSample(key: key, seed: seed, depth: depth, promptTokens: tokens.count, expected: task.expected,
                                fullScore: fullScore, fullText: result.text, runs: [])
        }
        let replayer = Replayer(try ReplayTrace(path: tracePath))
        var runs: [CorpusRun] = []
        for policy in settings.policies {
            for fraction in settings.fractions {
                let budget = Budget.fraction(fraction).tokens(prompt: tokens.count, window: policy.window)
                let replayed = try replayer.replay(policy, budget: budget, profile: profile, continual: settings.continual)
                guard let outcome = replayed.outcome else {
                    throw CorpusError("\(key): the recording has no run of \(policy.runLabel(budget: budget, continual: settings.continual))")
                }
                runs.append(CorpusRun(policy: policy, fraction: fraction, budget: budget, score: task.score(outcome.text),
                                      attentionMass: replayed.attentionMass, outputError: replayed.outputError))
            }
        }
        return CorpusSample(key: key, seed: seed, depth: depth, promptTokens: tokens.count, expected: task.expected,
                            fullScore: fullScore, fullText: result.text, runs: runs)
    }
}
