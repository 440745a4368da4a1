import Accuracy
import ArgumentParser
import Engine
import Foundation
import Policies
import Recorder
import Reporting

/// `ckv-sim corpus run`: the accuracy corpus of one model (issue #19).
struct CorpusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "corpus",
        abstract: "Run the accuracy corpus: generated tasks of every kind and length, each prefilled once and continued for real by every policy at every kv-fraction.",
        subcommands: [Run.self]
    )
}

extension CorpusCommand {
    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run (or resume) a corpus into a results file (JSON Lines: the settings, then one line per finished sample).",
            discussion: """
            Each sample is generated from the seed, recorded once with the full cache, continued by every
            policy at every kv-fraction from the same prefill, and replayed for the attention mass and
            output error of the same selections. A sample is appended and synced as it finishes: an
            interrupted run loses only the sample in progress, and the same command resumes it (the
            settings must match the file's).
            """
        )

        @Option(help: "The GGUF model file.")
        var model: String

        @Option(help: "Task kinds, comma-separated (\(TaskKind.names.joined(separator: ", "))), or 'all'.")
        var kinds = "all"

        @Option(help: "Prompt lengths in tokens, comma-separated (1k = 1024).")
        var lengths: String

        @Option(help: "Samples per length: one number for every length, or one per length (default 30 up to 8k tokens, 12 beyond).")
        var samples: String?

        @Option(help: "Policies, comma-separated (\(PolicyKind.names.joined(separator: ", "))), or 'all' (compresskv with --profile).")
        var policies = "all"

        @Option(name: .customLong("kv-fractions"), help: "Budgets as fractions of each prompt's KV, comma-separated.")
        var kvFractions = "2%,5%,10%,20%,50%"

        @Option(help: "Seed of the task generator.")
        var seed: UInt64 = 1

        @Flag(help: "Wrap each prompt as a user turn in the model's chat format.")
        var chat = false

        @Flag(name: .customLong("compress-once"), help: "Compress only after the prompt (StreamingLLM, H2O and KV-Compress otherwise go on evicting during decode).")
        var compressOnce = false

        @Option(help: "Head profile for compresskv (JSON from `ckv-sim heads identify`).")
        var profile: String?

        @Option(help: "The results file (.jsonl); an existing one is resumed.")
        var out: String

        func run() async throws {
            let kindList = try parseTaskKinds(kinds)
            let lengthList = try parseLengths(lengths)
            guard !kindList.isEmpty, !lengthList.isEmpty else { throw CLIError("--kinds and --lengths need at least one value each") }
            let sampleList = try samples.map { try parseSamples($0, lengths: lengthList) }
            let headProfile = try profile.map { try HeadProfile.load(path: $0) }
            let policyList = try parsePolicies(policies, haveProfile: headProfile != nil)
            let fractions = try parseBudgets(tokens: nil, fractions: kvFractions).compactMap { b -> Double? in
                if case let .fraction(f) = b { return f }
                return nil
            }
            guard !fractions.isEmpty else { throw CLIError("--kv-fractions: no fraction given") }
            let recorder = Recorder(model: try LanguageModel(path: model))
            let settings = CorpusRunner.settings(model: recorder.identity, kinds: kindList, lengths: lengthList, samples: sampleList, policies: policyList,
                                                 fractions: fractions, seed: seed, chat: chat, continual: !compressOnce)
            let runner = try CorpusRunner(recorder: recorder, settings: settings, profile: headProfile)
            let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("ckv-corpus-\(getpid())")
            try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: scratch) }
            let plan = settings.plan
            let bar = ProgressBar(label: "corpus \(URL(fileURLWithPath: out).lastPathComponent)")
            let clock = ContinuousClock(), start = clock.now
            // The ETA weighs what is left by prompt length (a 8k sample costs far more than a 1k one).
            let ran = try runner.run(into: out, scratch: scratch, willRun: { bar.costs = $0.map { Double($0.length) } }) { done, total, key in
                bar.update(done: done, total: total, unit: "samples", note: key.description)
            }
            bar.finish()
            let seconds = Int((clock.now - start).seconds.rounded())
            let took = seconds >= 3600 ? "\(seconds / 3600) h \(seconds % 3600 / 60) min" : seconds >= 60 ? "\(seconds / 60) min \(seconds % 60) s" : "\(seconds) s"
            print("\(out): \(ran.count) samples run in \(took) (\(plan.count - ran.count) were already there); \(plan.count) in all")
        }
    }
}

/// `ckv-sim accuracy`: the curves of corpus results.
struct AccuracyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "accuracy",
        abstract: "Accuracy against kv-fraction from corpus results: per model, task kind and length, the full cache's success and each policy's score on the samples it solves, with Wilson 95 % intervals.",
        discussion: """
        A sample the full cache fails carries no information about compression: it counts in the full
        cache's rate and not in the policies' scores. Cells where the full cache solves fewer than 5
        samples are listed as uninformative. Scores are the share of the expected items produced.
        """
    )

    @Argument(help: "Results files (.jsonl from `ckv-sim corpus run`).")
    var files: [String]

    @Option(help: "Only these task kinds, comma-separated.")
    var kinds: String?

    @Option(help: "Only these policies, comma-separated.")
    var policies: String?

    @Option(help: "Output format: table, md (the table), report (Markdown: per kind its tables and, with --charts, SVG charts; the papers' ordering with the intervals behind each verdict; the score at a fixed kv-fraction by length) or json.")
    var format: Format = .table

    @Option(help: "With --format report: write one SVG chart per (model, kind, length) into this directory and link them.")
    var charts: String?

    @Option(name: .customLong("links-from"), help: "With --charts: the directory the report will be read from, so that its chart links are relative to it (default: the current directory).")
    var linksFrom: String = "."

    enum Format: String, ExpressibleByArgument, CaseIterable { case table, md, report, json }

    func validate() throws {
        if charts != nil, format != .report { throw ValidationError("--charts needs --format report") }
    }

    func run() async throws {
        let kindFilter = try kinds.map { Set(try parseTaskKinds($0)) }
        let policyFilter = try policies.map { Set(try parsePolicies($0, haveProfile: true)) }
        var cells: [AccuracyCell] = [], progress: [String] = []
        for path in files {
            let file = try CorpusFile.read(path).file
            cells += file.cells.filter { kindFilter?.contains($0.kind) ?? true }
            progress.append(AccuracyReport.progress(file, path: path))
        }
        for i in cells.indices { cells[i].points.removeAll { !(policyFilter?.contains($0.policy) ?? true) } }
        switch format {
        case .json: print(try JSONOutput.string(cells))
        case .table: print(AccuracyReport.table(cells).text)
        case .md: print(AccuracyReport.table(cells).markdown, terminator: "")
        case .report:
            var link: ((AccuracyCell) -> String)?
            if let charts {
                do {
                    try FileManager.default.createDirectory(atPath: charts, withIntermediateDirectories: true)
                    for cell in cells where cell.isInformative {
                        try Data(AccuracyReport.chart(cell).utf8).write(to: URL(fileURLWithPath: charts).appendingPathComponent(AccuracyReport.chartName(cell)))
                    }
                } catch {
                    throw CLIError("--charts \(charts): cannot write the charts (\(error.localizedDescription))")
                }
                let base = relativePath(from: linksFrom, to: charts)
                link = { base.isEmpty ? AccuracyReport.chartName($0) : base + "/" + AccuracyReport.chartName($0) }
            }
            print(progress.joined(separator: "\n") + "\n" + AccuracyReport.markdown(cells, chartLink: link), terminator: "")
        }
    }
}

/// `to` relative to `from`, both paths relative to the current directory or absolute ("Docs",
/// "Docs/accuracy-charts" → "accuracy-charts").
func relativePath(from: String, to: String) -> String {
    func parts(_ p: String) -> [String] {
        URL(fileURLWithPath: p).standardizedFileURL.pathComponents.filter { $0 != "/" }
    }
    let a = parts(from), b = parts(to)
    let common = zip(a, b).prefix { $0 == $1 }.count
    return (Array(repeating: "..", count: a.count - common) + b[common...]).joined(separator: "/")
}

/// `--kinds a,b` (or `all`) as task kinds.
func parseTaskKinds(_ text: String) throws -> [TaskKind] {
    if text.lowercased() == "all" { return TaskKind.allCases }
    return try text.split(separator: ",").map { try TaskKind(parsing: $0.trimmingCharacters(in: .whitespaces)) }
}
