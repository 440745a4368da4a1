import ArgumentParser
import Engine
import Foundation
import Policies
import Recorder
import Replay

/// `ckv-sim record`: full-cache runs of generated tasks, written as traces; optionally the real
/// compressed runs' outcomes for policies × budgets, continued from the same prefill.
struct RecordCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "record",
        abstract: "Run the reference engine with the full cache on generated tasks and write attention traces (.ckvt).",
        discussion: """
        One trace per length × depth. With several, FILE.ckvt becomes FILE-<tokens>-d<depth>.ckvt.
        --evaluate runs each policy × budget for real from the same prefill and stores whether it
        still finds the answer (annotations "outcome.POLICY@BUDGET"), which `replay` reports as accuracy.
        """
    )

    @Option(help: "The GGUF model file.")
    var model: String

    @Option(help: "The task kind: \(TaskKind.names.joined(separator: ", ")) (Docs/accuracy.md describes each).")
    var task: TaskKind = .passkey

    @Option(help: "Prompt lengths in tokens, comma-separated (1k = 1024).")
    var lengths = "1k"

    @Option(help: "Needle depths, 0 … 1, comma-separated.")
    var depths = "0.5"

    @Option(help: "Seed of the task generator.")
    var seed: UInt64 = 1

    @Option(name: .customLong("max-tokens"), help: "Tokens to generate greedily (default: room for the kind's whole answer, 8 for passkey and qa).")
    var maxTokensOption: Int?

    var maxTokens: Int { maxTokensOption ?? task.answerTokens }

    @Flag(help: "Wrap the prompt as a user turn in the model's chat format; the answer may then appear anywhere in the reply.")
    var chat = false

    @Option(help: "Policies to run for real after the full run, comma-separated (\(PolicyKind.names.joined(separator: ", "))), or 'all' (compresskv with --profile).")
    var evaluate: String?

    @Option(help: "With --evaluate: budgets in tokens per layer per KV head, comma-separated.")
    var budgets: String?

    @Option(name: .customLong("kv-fractions"), help: "With --evaluate: budgets as fractions of the prompt's KV (e.g. 1%,5%,0.25).")
    var kvFractions: String?

    @Flag(name: .customLong("compress-once"),
          help: "With --evaluate: compress only after the prompt; StreamingLLM, H2O and KV-Compress otherwise go on evicting during decode.")
    var compressOnce = false

    @Option(help: "Head profile for compresskv (JSON from `ckv-sim heads identify`).")
    var profile: String?

    @Option(name: .customLong("frame-size"),
            help: "Raw bytes per trace frame, 4k … 64M (k = KiB, M = MiB): a killed recording loses at most the unit of work in progress, and of it at most one frame. Each finished unit (prompt, statistics, decode step, compressed run) closes its frame anyway.")
    var frameSize = "1M"

    @Option(help: "The trace file to write (.ckvt).")
    var out: String

    func validate() throws {
        guard maxTokens > 0 else { throw ValidationError("--max-tokens must be positive") }
        guard evaluate != nil || (budgets == nil && kvFractions == nil) else { throw ValidationError("--budgets and --kv-fractions need --evaluate") }
        guard evaluate == nil || budgets != nil || kvFractions != nil else { throw ValidationError("--evaluate needs --budgets or --kv-fractions") }
    }

    /// `--frame-size` in bytes: k and M are binary, as for token counts ("KiB"/"MiB" spelled out too).
    var frameBytes: Int {
        get throws {
            let text = frameSize.trimmingCharacters(in: .whitespaces)
            let spelled = text.hasSuffix("iB") ? String(text.dropLast(2)) : text
            guard let n = parseTokenCount(spelled), (4 << 10)...(64 << 20) ~= n else {
                throw CLIError("--frame-size: '\(frameSize)' is not a size from 4k to 64M (e.g. 256k, 1M)")
            }
            return n
        }
    }

    func run() async throws {
        let frameBytes = try frameBytes
        let lengthList = try parseLengths(lengths)
        let depthList = try parseDepths(depths)
        let headProfile = try profile.map { try HeadProfile.load(path: $0) }
        let policies = try evaluate.map { try parsePolicies($0, haveProfile: headProfile != nil) } ?? []
        let budgetList = try parseBudgets(tokens: budgets, fractions: kvFractions)
        if policies.contains(.compressKV), headProfile == nil {
            throw CLIError("compresskv needs a head profile: --profile FILE.json")
        }
        for policy in policies {
            for case let .tokens(b) in budgetList where b < policy.window {
                throw CLIError("--budgets: \(b) is below \(policy.rawValue)'s window of \(policy.window) tokens")
            }
        }
        let m = try LanguageModel(path: model)
        if let longest = lengthList.max(), longest + maxTokens > m.config.contextLength {
            throw CLIError("--lengths: a \(longest)-token task and \(maxTokens) tokens to generate exceed the model's context of \(m.config.contextLength) tokens")
        }
        let recorder = Recorder(model: m, options: { var o = RecordingOptions(); o.maxTokens = maxTokens; o.frameSize = frameBytes; return o }())
        if let headProfile, headProfile.model != recorder.identity.name {
            throw CLIError("\(profile!): the head profile is for \(headProfile.model); the model is \(recorder.identity.name)")
        }
        let evaluation = Evaluation(policies: policies, budgets: budgetList, profile: headProfile, continual: !compressOnce)
        let runs = lengthList.flatMap { n in depthList.map { (n, $0) } }
        for (index, (length, depth)) in runs.enumerated() {
            var t = try task.generate(tokens: length, depth: depth, seed: seed, tokenizer: m.tokenizer)
            let tokens = try m.promptTokens(for: &t, chat: chat)
            let path = runs.count == 1 ? out : Self.path(out, length: length, depth: depth)
            let bar = ProgressBar(label: "[\(index + 1)/\(runs.count)] \(URL(fileURLWithPath: path).lastPathComponent)")
            let result = try recorder.record(task: t, tokens: tokens, to: path, progress: bar.update, evaluation: evaluation, onRun: bar.note)
            bar.finish()
            let mb = Double(result.summary.fileBytes) / 1_000_000
            print("\(path): \(result.promptTokens) prompt tokens, full cache \(result.correct ? "finds" : "misses") '\(t.expected.joined(separator: ", "))' (\(result.text.debugDescription)), \(String(format: "%.1f", mb)) MB")
        }
    }

    static func path(_ out: String, length: Int, depth: Double) -> String {
        let base = out.hasSuffix(".ckvt") ? String(out.dropLast(5)) : out
        return "\(base)-\(length)-d\(Int((depth * 100).rounded())).ckvt"
    }
}

extension TaskKind: ExpressibleByArgument {}

/// Parses "snapkv,h2o" or "all" (every policy; compresskv only when a head profile is given).
func parsePolicies(_ text: String, haveProfile: Bool) throws -> [PolicyKind] {
    if text.lowercased() == "all" { return PolicyKind.allCases.filter { haveProfile || !$0.needsProfile } }
    let names = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    guard !names.isEmpty else { throw CLIError("--policies: no policy given; known: \(PolicyKind.names.joined(separator: ", ")), or all") }
    return try names.map { try PolicyKind(parsing: $0) }
}

/// Parses `--budgets 64,128` or `--kv-fractions 1%,0.05` (one of them) into budget specs.
func parseBudgets(tokens: String?, fractions: String?) throws -> [Budget] {
    if tokens != nil, fractions != nil { throw CLIError("give --budgets or --kv-fractions, not both") }
    let b = try (tokens ?? "").split(separator: ",").map { s -> Budget in
        guard let n = parseTokenCount(String(s)), n > 0 else { throw CLIError("--budgets: '\(s)' is not a positive token count") }
        return .tokens(n)
    }
    let f = try (fractions ?? "").split(separator: ",").map { s -> Budget in
        let t = s.trimmingCharacters(in: .whitespaces)
        let value = t.hasSuffix("%") ? Double(t.dropLast()).map { $0 / 100 } : Double(t)
        guard let value, value > 0, value <= 1 else { throw CLIError("--kv-fractions: '\(s)' is not a fraction in (0, 1] (write 5% or 0.05)") }
        return .fraction(value)
    }
    return b + f
}

/// A one-line progress bar on stderr, with the rate and ETA (off a terminal: a line per noted step).
final class ProgressBar: @unchecked Sendable {
    let label: String
    let terminal = isatty(2) != 0
    let clock = ContinuousClock()
    let start: ContinuousClock.Instant
    var lastDraw = -1.0
    var status = ""
    var last: (done: Int, total: Int, unit: String)?
    /// Each step's relative cost (a probe's prompt length), when steps differ: the ETA then weighs
    /// what is left by it instead of counting steps, so a run of 1k then 32k probes does not
    /// promise the end after its short ones.
    var costs: [Double]?

    init(label: String) {
        self.label = label
        start = clock.now
    }

    var seconds: Double { (clock.now - start).seconds }

    /// A recording's progress in tokens.
    func update(_ p: RecordingProgress) { update(done: p.done, total: p.total, unit: "tok") }

    /// Progress in `unit`s; a `note` marks a finished step (a probe, a task). Off a terminal (a
    /// log, nohup) each noted step is one plain line, so long runs are not silent.
    func update(done: Int, total: Int, unit: String, note: String? = nil) {
        last = (done, total, unit)
        if let note { status = note }
        guard terminal else {
            if let note {
                let (rate, eta) = pace(done: done, total: total)
                FileHandle.standardError.write(Data("\(label) \(done)/\(total) \(unit) \(String(format: "%.2f", rate)) \(unit)/s ETA \(Int(eta.rounded()))s \(note)\n".utf8))
            }
            return
        }
        let t = seconds
        guard t - lastDraw >= 0.2 || done == total || note != nil else { return }
        lastDraw = t
        draw()
    }

    /// Units per second so far and the seconds left at that pace.
    private func pace(done: Int, total: Int) -> (rate: Double, eta: Double) {
        let t = seconds
        return (t > 0 ? Double(done) / t : 0, Self.eta(elapsed: t, done: done, total: total, costs: costs))
    }

    /// Seconds left after `done` of `total` steps took `elapsed`: what is left at the pace so far,
    /// counted in `costs` when they cover every step, else in steps.
    static func eta(elapsed: Double, done: Int, total: Int, costs: [Double]?) -> Double {
        guard done > 0, done <= total else { return 0 }
        if let costs, costs.count == total {
            let spent = costs[..<done].reduce(0, +), left = costs[done...].reduce(0, +)
            return spent > 0 ? elapsed * left / spent : 0
        }
        return elapsed * Double(total - done) / Double(done)
    }

    func note(_ text: String) {
        status = text
        if terminal, last != nil { draw() }
    }

    private func draw() {
        guard let (done, total, unit) = last else { return }
        let width = 24, filled = total > 0 ? min(width, width * done / total) : 0
        let (rate, eta) = pace(done: done, total: total)
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        let line = "\(label) [\(bar)] \(done)/\(total) \(unit) \(String(format: "%.1f", rate)) \(unit)/s ETA \(Int(eta.rounded()))s \(status)"
        FileHandle.standardError.write(Data(("\r" + line + "\u{1B}[K").utf8))
    }

    func finish() {
        if terminal { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }
}
