import ArgumentParser
import Engine
import Foundation
import Reporting
import Policies

/// `ckv-sim heads identify`: CompressKV's Semantic Retrieval Heads of a model.
struct HeadsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "heads",
        abstract: "Semantic Retrieval Heads of a model (CompressKV).",
        subcommands: [Identify.self]
    )

    struct Identify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Score every query head on needle-in-a-haystack probes (CompressKV eq. 5) and write the head profile (JSON).",
            discussion: """
            Probes: our own haystack with 3 needles at every length × depth; greedy decoding up to --max-tokens,
            stopping at a newline; a trial counts when the answer's ROUGE-1 recall exceeds 0.5. Prints the top
            heads per layer with the classic retrieval-head score beside the semantic one.
            """
        )

        @Option(help: "The GGUF model file.")
        var model: String

        @Option(help: "Probe lengths in tokens, comma-separated (1k = 1024).")
        var lengths = "512,1k,2k"

        @Option(help: "Needle depths, 0 … 1, comma-separated.")
        var depths = "0,0.25,0.5,0.75,1"

        @Option(name: .customLong("max-tokens"), help: "Most tokens decoded per probe.")
        var maxTokens = 50

        @Option(name: .customLong("top"), help: "Heads per layer to print.")
        var top = 4

        @Option(help: "Where to write the profile (JSON).")
        var out: String

        @Flag(help: "Print every probe's answer on stderr.")
        var verbose = false

        @Option(help: "How to ask: chat (a user turn in the model's chat format) or completion (ending \"Answer:\"); default chat for ChatML models, completion otherwise.")
        var ask: AskFormat?

        enum AskFormat: String, ExpressibleByArgument { case chat, completion }

        func run() async throws {
            var options = HeadProbeOptions()
            options.lengths = try parseLengths(lengths)
            options.depths = try parseDepths(depths)
            options.maxTokens = maxTokens
            let m = try LanguageModel(path: model)
            let template = try? ChatTemplate(model: m)
            switch ask ?? (template?.format == .chatML ? .chat : .completion) {
            case .chat:
                guard let template else { throw CLIError("\(model): no known chat format for --ask chat") }
                options.chat = template
            case .completion: options.chat = nil
            }
            if let longest = options.lengths.max(), longest + maxTokens > m.config.contextLength {
                throw CLIError("--lengths: \(longest) tokens and \(maxTokens) to generate exceed the model's context of \(m.config.contextLength)")
            }
            let bar = ProgressBar(label: "heads")
            // Probes run length by length; attention makes a probe's cost grow faster than its length.
            bar.costs = options.lengths.flatMap { n in
                Array(repeating: probeCost(tokens: n), count: options.depths.count * options.needles.count)
            }
            let result = try m.identifyRetrievalHeads(options) { done, total, note in
                if verbose, bar.terminal { printError("probe \(done)/\(total): \(note)") } // off a terminal the bar prints it
                bar.update(done: done, total: total, unit: "probes", note: note)
            }
            bar.finish()
            var profile = result.profile
            // Keep layer errors already estimated for this model.
            if let data = FileManager.default.contents(atPath: out), let old = try? JSONDecoder().decode(HeadProfile.self, from: data), old.model == profile.model {
                profile.layerErrors = old.layerErrors
            }
            try writeProfile(profile, to: out)
            print("\(profile.model): \(result.keptTrials) of \(result.trials) probes answered (ROUGE-1 recall > 0.5); profile written to \(out)")
            if let probes = profile.probes {
                print("answered per length: " + zip(probes.lengths, zip(probes.kept, probes.trials)).map { "\($0.0) tokens \($0.1.0)/\($0.1.1)" }.joined(separator: ", "))
            }
            var rows = Table(columns: ["layer", "top heads (semantic score)", "classic retrieval score of the same heads"])
            for l in profile.scores.indices {
                let heads = profile.scores[l].indices.sorted { profile.scores[l][$0] > profile.scores[l][$1] || (profile.scores[l][$0] == profile.scores[l][$1] && $0 < $1) }.prefix(top)
                rows.append([String(l), heads.map { "\($0) (\(String(format: "%.3f", profile.scores[l][$0])))" }.joined(separator: ", "),
                             heads.map { String(format: "%.3f", result.classic[l][$0]) }.joined(separator: ", ")])
            }
            print(rows.text)
        }
    }
}

/// `ckv-sim layers estimate`: CompressKV's per-layer eviction errors, into the head profile.
struct LayersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "layers",
        abstract: "Per-layer eviction errors of a model (CompressKV's layer-adaptive budgets).",
        subcommands: [Estimate.self]
    )

    struct Estimate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Measure ‖O_comp − O_full‖/‖O_full‖ after W_O per layer with Semantic-Retrieval-Head selection at budget 32, and store it in the profile.",
            discussion: """
            Tasks: passkey and QA prompts at --lengths and depths 25 % and 75 %, decoded with the full cache;
            errors summed over decode steps, L1-normalised per task kind, averaged, normalised again. Prints the
            layer budgets this gives at --show-budget.
            """
        )

        @Option(help: "The GGUF model file.")
        var model: String

        @Option(help: "The head profile from `ckv-sim heads identify` (updated in place).")
        var profile: String

        @Option(help: "Budget of the selection whose error is measured (the paper's 32).")
        var budget = 32

        @Option(help: "Task lengths in tokens, comma-separated.")
        var lengths = "1k,2k"

        @Option(name: .customLong("max-tokens"), help: "Tokens decoded per task.")
        var maxTokens = 16

        @Option(name: .customLong("show-budget"), help: "Print the layer budgets at this average budget.")
        var showBudget = 128

        func run() async throws {
            var p = try HeadProfile.load(path: profile)
            let m = try LanguageModel(path: model)
            guard p.model == m.displayName else {
                throw CLIError("\(profile): the head profile is for \(p.model); the model is \(m.displayName)")
            }
            guard budget >= CompressKV.defaultWindow else { throw CLIError("--budget \(budget) is below compresskv's window of \(CompressKV.defaultWindow) tokens") }
            var tasks: [RetrievalTask] = [], costs: [Double] = []
            for n in try parseLengths(lengths) {
                for depth in [0.25, 0.75] {
                    tasks.append(try Tasks.passkey(tokens: n, depth: depth, seed: 3, tokenizer: m.tokenizer))
                    tasks.append(try Tasks.qa(tokens: n, depth: depth, seed: 3, tokenizer: m.tokenizer))
                    costs += [probeCost(tokens: n), probeCost(tokens: n)]
                }
            }
            let bar = ProgressBar(label: "layers")
            bar.costs = costs
            let errors = try m.estimateLayerErrors(profile: p, tasks: tasks, budget: budget, maxTokens: maxTokens) { done, total, note in
                bar.update(done: done, total: total, unit: "tasks", note: note)
            }
            bar.finish()
            p.layerErrors = errors
            try writeProfile(p, to: profile)
            // The budgets CompressKV gives the global layers (sliding-window layers keep their window).
            let global = (0..<m.config.layers).filter(m.config.isGlobal)
            let allocated = layerBudgets(errors: global.map { errors[$0] }, budget: showBudget, minimum: min(32, showBudget))
            var rows = Table(columns: ["layer", "error (L1-normalised)", "budget at \(showBudget)"])
            for (l, e) in errors.enumerated() {
                rows.append([String(l), String(format: "%.4f", e), global.firstIndex(of: l).map { String(allocated[$0]) } ?? "window"])
            }
            print(rows.text)
            print("\(p.model): layer errors written to \(profile)")
        }
    }
}

/// A probe's relative cost for the ETA: its prompt length, growing faster than linearly as
/// attention takes over (Gemma 3 270M, 2 threads: a 1k probe 3.5 s, an 8k one 37 s, a 32k one 3.6 min).
func probeCost(tokens n: Int) -> Double {
    Double(n) * (1 + Double(n) / 28_000)
}

func writeProfile(_ profile: HeadProfile, to path: String) throws {
    guard FileManager.default.createFile(atPath: path, contents: try JSONOutput.data(profile) + Data("\n".utf8)) else {
        throw CLIError("\(path): cannot write the profile")
    }
}

func parseLengths(_ text: String) throws -> [Int] {
    try text.split(separator: ",").map { s in
        guard let n = parseTokenCount(String(s)), n > 0 else { throw CLIError("--lengths: '\(s)' is not a token count") }
        return n
    }
}

func parseDepths(_ text: String) throws -> [Double] {
    try text.split(separator: ",").map { s in
        guard let d = Double(s.trimmingCharacters(in: .whitespaces)), (0...1).contains(d) else { throw CLIError("--depths: '\(s)' is not a depth in 0 … 1") }
        return d
    }
}
