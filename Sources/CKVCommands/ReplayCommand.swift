import ArgumentParser
import Foundation
import Reporting
import Policies
import Replay

/// `ckv-sim replay`: what each policy × budget keeps of recorded traces, and what that costs.
struct ReplayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Apply policies × budgets to recorded traces: kept fraction, attention mass and output error during decode, and the real compressed runs' accuracy.",
        discussion: """
        The kept positions are exactly the engine's (the same policy code on the same statistics).
        Attention mass and output error use the full-cache run's decode queries: the first step is the
        prompt's last query. Accuracy is reported only where the trace holds a real compressed run at
        that policy and budget (`ckv-sim record --evaluate`); otherwise '—'.
        """
    )

    @Argument(help: "Trace files (.ckvt).")
    var traces: [String]

    @Option(help: "Policies, comma-separated (\(PolicyKind.names.joined(separator: ", "))), or 'all' (compresskv needs --profile).")
    var policies: String?

    @Option(help: "Budgets in tokens per layer per KV head (window included), comma-separated.")
    var budgets: String?

    @Option(name: .customLong("kv-fractions"), help: "Budgets as fractions of each prompt's KV (e.g. 1%,5%,0.25).")
    var kvFractions: String?

    @Option(help: "Head profile for compresskv (JSON from `ckv-sim heads identify`); repeat for traces of several models. Default: the committed Profiles/*.json.")
    var profile: [String] = []

    @Flag(name: .customLong("compress-once"),
          help: "Compress only after the prompt; StreamingLLM, H2O and KV-Compress otherwise go on evicting during the recorded decode steps (fed the full-cache attention restricted to what they hold).")
    var compressOnce = false

    @Option(help: "Output format: table, json, csv, or md (a summary per model × policy × budget over all the traces, with rank correlations).")
    var format: ReplayFormat = .table

    enum ReplayFormat: String, ExpressibleByArgument, CaseIterable { case table, json, csv, md }

    func run() async throws {
        let explicit = !profile.isEmpty
        let paths = explicit ? profile : committedProfiles()
        let profiles = try paths.map { try HeadProfile.load(path: $0) }
        let kinds = try parsePolicies(policies ?? "all", haveProfile: !profiles.isEmpty)
        if kinds.contains(where: \.needsProfile), profiles.isEmpty {
            throw CLIError("compresskv needs a head profile: --profile FILE.json")
        }
        var specs = try parseBudgets(tokens: budgets, fractions: kvFractions)
        if specs.isEmpty { specs = [64, 128, 256, 512, 1024].map { .tokens($0) } }
        var results: [ReplayResult] = []
        var labels: [String] = []
        for path in traces {
            let trace = try ReplayTrace(path: path)
            let replayer = Replayer(trace)
            // The profile recorded for this trace's model; with explicit profiles, one must match.
            let headProfile = profiles.first { $0.model == trace.model.name }
            if kinds.contains(where: \.needsProfile), headProfile == nil {
                throw CLIError("\(path) was recorded from \(trace.model.name); the head profiles are for \(profiles.map(\.model).joined(separator: ", "))")
            }
            for kind in kinds {
                for spec in specs {
                    let budget = spec.tokens(prompt: trace.promptLength, window: kind.window)
                    results.append(try replayer.replay(kind, budget: budget, profile: headProfile, continual: !compressOnce))
                    labels.append(spec.description)
                }
            }
        }
        switch format {
        case .json: print(try JSONOutput.string(results))
        case .csv: print(Self.csv(results), terminator: "")
        case .table: print(Self.table(results))
        case .md: print(Summary.markdown(Summary.cells(Array(zip(labels, results)))), terminator: "")
        }
    }

    static let columns = ["trace", "policy", "budget", "kept", "attn mass", "min mass", "output err", "answer", "agreement"]

    static func cells(_ r: ReplayResult) -> [String] {
        [URL(fileURLWithPath: r.trace).lastPathComponent, r.policy + (r.decodeEviction ? " (decode)" : ""), String(r.budget), formatPercent(round(r.keptFraction * 1000) / 1000),
         Format.fixed(r.attentionMass, 3), Format.fixed(r.minimumAttentionMass, 3), Format.fixed(r.outputError, 3),
         r.outcome.map { $0.correct ? "found" : "missed" } ?? "—", r.greedyAgreement.map { Format.fixed($0, 2) } ?? "—"]
    }

    static func table(_ results: [ReplayResult]) -> String {
        var text = Table(columns: columns, rows: results.map(cells), rightAligned: [2, 3, 4, 5, 6, 8]).text
        // Across traces: accuracy where real runs exist.
        let groups = Dictionary(grouping: results) { "\($0.policy)@\($0.budget)" }
        let measured = groups.values.compactMap { rs -> (String, Int, Int)? in
            let outcomes = rs.compactMap(\.outcome)
            guard !outcomes.isEmpty, let r = rs.first else { return nil }
            return ("\(r.policy)@\(r.budget)", outcomes.filter(\.correct).count, outcomes.count)
        }.sorted { $0.0 < $1.0 }
        if Set(results.map(\.trace)).count > 1, !measured.isEmpty {
            text += "\n\naccuracy of the real compressed runs, over the traces that hold one:\n"
            text += measured.map { "  \($0.0): \($0.1)/\($0.2)" }.joined(separator: "\n")
        }
        return text
    }

    static func csv(_ results: [ReplayResult]) -> String {
        let header = ["trace", "model", "task", "prompt_tokens", "policy", "budget", "decode_eviction", "kept_fraction", "attention_mass",
                      "minimum_attention_mass", "output_error", "correct", "greedy_agreement"]
        let rows = results.map { r in
            [r.trace, r.model, r.task, String(r.promptTokens), r.policy, String(r.budget), r.decodeEviction ? "1" : "0", Format.fixed(r.keptFraction, 6),
             Format.fixed(r.attentionMass, 6), Format.fixed(r.minimumAttentionMass, 6), Format.fixed(r.outputError, 6),
             r.outcome.map { $0.correct ? "1" : "0" } ?? "", r.greedyAgreement.map { Format.fixed($0, 4) } ?? ""]
        }
        return Table(columns: header, rows: rows).csv
    }
}

/// The head profiles committed in Profiles/ (none when the directory is not found).
func committedProfiles() -> [String] {
    guard let dir = try? resource("Profiles"), let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return [] }
    return names.filter { $0.hasSuffix(".json") }.sorted().map { (dir as NSString).appendingPathComponent($0) }
}
