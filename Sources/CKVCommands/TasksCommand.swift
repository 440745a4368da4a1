import ArgumentParser
import Engine
import Foundation
import Recorder
import TraceFormat

/// `ckv-sim tasks`: the generated tasks, for recorders that run elsewhere.
struct TasksCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tasks",
        abstract: "Generated tasks for recorders that run elsewhere (the Hugging Face recorder on a GPU).",
        subcommands: [Export.self]
    )

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write generated tasks as JSON Lines for `ckv-record` (Recorders/huggingface).",
            discussion: """
            The same kinds, lengths, samples and seed name the same tasks as `corpus run` (sample i of n at a
            length has its needle at depth (i + ½)/n). Lengths are fitted with the tokenizer of --tokenizer-of,
            whose token ids and needle spans the file then carries; without it they are fitted with the bundled
            SmolLM2-135M-Instruct's tokenizer and the file carries text only, which the recorder encodes with its
            own model's tokenizer (a prompt then has about as many tokens, not exactly). Docs/recording-on-gpu.md
            describes the file.
            """
        )

        @Option(help: "Task kinds, comma-separated (\(TaskKind.names.joined(separator: ", "))), or 'all'.")
        var kinds = "passkey"

        @Option(help: "Prompt lengths in tokens, comma-separated (1k = 1024, 128k).")
        var lengths: String

        @Option(help: "Samples per length: one number for every length, or one per length.")
        var samples = "1"

        @Option(help: "Seed of the task generator.")
        var seed: UInt64 = 1

        @Option(name: .customLong("tokenizer-of"), help: "A GGUF model whose tokenizer fits the lengths; its token ids go into the file.")
        var tokenizerOf: String?

        @Flag(help: "Prompts as one user turn in the model's chat format (rendered here with --tokenizer-of, else by the recorder).")
        var chat = false

        @Option(help: "The tasks file to write (.jsonl).")
        var out: String

        func run() async throws {
            let kindList = try parseTaskKinds(kinds)
            let lengthList = try parseLengths(lengths)
            guard !kindList.isEmpty, !lengthList.isEmpty else { throw CLIError("--kinds and --lengths need at least one value each") }
            let sampleList = try parseSamples(samples, lengths: lengthList)
            let path = try tokenizerOf ?? resource("Models/SmolLM2-135M-Instruct.Q4_1.gguf")
            let model = try LanguageModel(path: path)
            let identity = Recorder(model: model).identity
            if let tokenizerOf, let longest = lengthList.max(), longest > model.config.contextLength {
                throw CLIError("--lengths: \(longest) tokens exceed \(identity.name)'s context of \(model.config.contextLength) tokens (\(tokenizerOf))")
            }
            let plan = SamplePlan(kinds: kindList, lengths: lengthList, samples: sampleList, seed: seed)
            let withTokens = tokenizerOf != nil
            let header = TaskFileHeader(producer: "ckv-sim \(CKVSim.version)", tokenizer: TokenizerIdentity(model: identity.name, ggufSHA256: identity.ggufSHA256 ?? ""),
                                        tokensIncluded: withTokens, chat: chat, windows: RecordingOptions().windows, squaredWindows: RecordingOptions().squaredWindows)
            var data: [UInt8] = try TraceJSON.encode(header) + [0x0A]
            let keys = plan.keys
            let bar = ProgressBar(label: "tasks \(URL(fileURLWithPath: out).lastPathComponent)")
            for (i, key) in keys.enumerated() {
                var task = try plan.task(key, tokenizer: model.tokenizer)
                var prompt = task.prompt, tokens: [Int32]?
                if withTokens {
                    tokens = try model.promptTokens(for: &task, chat: chat)
                    if chat { prompt = model.tokenizer.decode(tokens!) }
                } else if chat {
                    task.answerAnywhere = true
                }
                data += try TraceJSON.encode(ExportedTask(task, key: key, prompt: prompt, tokens: tokens, tokenizer: model.tokenizer)) + [0x0A]
                bar.update(done: i + 1, total: keys.count, unit: "tasks", note: key.description)
            }
            bar.finish()
            do { try Data(data).write(to: URL(fileURLWithPath: out), options: .atomic) } catch {
                throw CLIError("\(out): cannot write (\(error.localizedDescription))")
            }
            let fitted = withTokens ? "\(identity.name)'s tokens, ids included" : "tokens of the bundled \(identity.name) (text only; the recorder encodes with its model's tokenizer)"
            print("\(out): \(keys.count) tasks (\(kindList.map(\.rawValue).joined(separator: ", ")) at \(lengthList.map(String.init).joined(separator: ", ")) tokens), lengths in \(fitted)")
        }
    }
}

/// `--samples`: one count for every length, or one per length, each 1 … 10000.
func parseSamples(_ text: String, lengths: [Int]) throws -> [Int] {
    let counts = try text.split(separator: ",").map { s -> Int in
        guard let n = Int(s.trimmingCharacters(in: .whitespaces)), (1...10_000).contains(n) else {
            throw CLIError("--samples: '\(s)' is not a sample count in 1 … 10000")
        }
        return n
    }
    guard counts.count == 1 || counts.count == lengths.count else {
        throw CLIError("--samples: \(counts.count) counts for \(lengths.count) lengths (give one, or one per length)")
    }
    return counts.count == 1 ? Array(repeating: counts[0], count: lengths.count) : counts
}
