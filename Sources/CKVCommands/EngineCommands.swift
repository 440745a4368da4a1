import ArgumentParser
import Engine
import Foundation
import Reporting
import Policies
import Replay

/// `ckv-sim generate`: stream text from a GGUF model.
struct GenerateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "generate", abstract: "Generate text with the reference engine from a GGUF model (Gemma 3 or the Llama family).")

    @Option(help: "The GGUF model file.")
    var model: String

    @Option(help: "The prompt (special tokens such as <start_of_turn> are recognised).")
    var prompt: String

    @Flag(help: "Wrap the prompt as a user turn in the model's chat format (ChatML for SmolLM2, Gemma's turns).")
    var chat = false

    @Option(help: "With --chat: a system message.")
    var system: String?

    @Option(help: "Compress the KV cache after the prompt with this policy (\(PolicyChoice.names.joined(separator: ", "))); greedy.")
    var policy: String?

    @Option(help: "With --policy: tokens kept per layer per KV head, the observation window included.")
    var budget: Int?

    @Option(name: .customLong("kv-fraction"), help: "With --policy, instead of --budget: the fraction of the prompt's KV to keep (5% or 0.05).")
    var kvFraction: String?

    @Flag(name: .customLong("compress-once"),
          help: "With --policy: compress only after the prompt; StreamingLLM, H2O and KV-Compress otherwise go on evicting during decode to stay within the budget.")
    var compressOnce = false

    @Option(help: "With --policy compresskv: the model's head profile (JSON).")
    var profile: String?

    @Option(name: .customLong("max-tokens"), help: "Most tokens to generate.")
    var maxTokens = 64

    @Option(help: "Sampling temperature (0 = greedy).")
    var temperature: Float = 0

    @Option(help: "Seed of the sampler.")
    var seed: UInt64 = 1

    func validate() throws {
        guard maxTokens > 0 else { throw ValidationError("--max-tokens must be positive") }
        guard temperature >= 0, temperature.isFinite else { throw ValidationError("--temperature must be ≥ 0") }
        guard chat || system == nil else { throw ValidationError("--system needs --chat") }
        guard (policy == nil) == (budget == nil && kvFraction == nil) else { throw ValidationError("--policy goes with --budget or --kv-fraction") }
        guard budget == nil || kvFraction == nil else { throw ValidationError("--budget and --kv-fraction are two spellings of one setting: give one") }
        if let budget { guard budget > 0 else { throw ValidationError("--budget must be positive") } }
        guard policy == nil || temperature == 0 else { throw ValidationError("--policy runs greedy: drop --temperature") }
    }

    func run() async throws {
        let m = try LanguageModel(path: model)
        var text = prompt
        if chat {
            let turns = (system.map { [ChatMessage(role: .system, content: $0)] } ?? []) + [ChatMessage(role: .user, content: prompt)]
            text = try ChatTemplate(model: m).render(turns)
        }
        let tokens = m.tokenizer.encode(text)
        var stream = UTF8Stream()
        let emit: (Int32) -> Void = { token in FileHandle.standardOutput.write(Data(stream.append(m.tokenizer.piece(token)))) }
        var budget = self.budget
        if let kvFraction, let policy {
            let f = try parseFraction(kvFraction, "--kv-fraction")
            guard f > 0 else { throw CLIError("--kv-fraction must be above 0") }
            let window = try PolicyKind(parsing: policy).window
            budget = Budget.fraction(f).tokens(prompt: tokens.count, window: window)
        }
        if let policy, let budget {
            let select = try PolicyChoice.selector(policy, budget: budget, profile: profile, continual: !compressOnce)
            let run = try m.generateCompressed(prompt: tokens, maxTokens: maxTokens, select: select, onToken: emit)
            FileHandle.standardOutput.write(Data(stream.finish() + [0x0A]))
            let held = run.selection.counts.joined().reduce(0, +), full = tokens.count * m.config.layers * m.config.kvHeads
            let kept = "kept \(held) of \(full) prompt KV entries (\(Format.fixed(100 * Double(held) / Double(full), 1)) %)"
            printError("\(policy) at budget \(budget): \(kept); the cache holds \(run.cache.heldTokens) entries after \(run.tokens.count) generated tokens")
        } else {
            try m.generate(prompt: tokens, maxTokens: maxTokens, sampler: temperature == 0 ? .greedy : .temperature(temperature, seed: seed), onToken: emit)
            FileHandle.standardOutput.write(Data(stream.finish() + [0x0A]))
        }
    }
}

/// `ckv-sim engine …`: the engine's reference outputs.
struct EngineCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "engine", abstract: "Reference-engine outputs for comparison with llama.cpp.",
                                                    subcommands: [Eval.self])

    struct Eval: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Tokens, per-position argmax, last-position top-10 logits and a greedy continuation per prompt (llamacpp-oracle's shape)."
        )

        @Option(help: "The GGUF model file.")
        var model: String

        @Option(help: "A JSON array of prompt strings.")
        var prompts: String

        @Option(help: "Where to write the JSON results.")
        var out: String

        @Option(help: "Greedy tokens to generate per prompt.")
        var greedy = 24

        func run() async throws {
            guard let data = FileManager.default.contents(atPath: prompts) else { throw CLIError("\(prompts): cannot read the prompts file") }
            guard let list = try? JSONSerialization.jsonObject(with: data) as? [String] else {
                throw CLIError("\(prompts): expected a JSON array of strings")
            }
            let m = try LanguageModel(path: model)
            var results: [ReferenceOutputs] = []
            for (n, p) in list.enumerated() {
                printError("prompt \(n + 1)/\(list.count)")
                do { results.append(try m.referenceOutputs(prompt: p, greedy: greedy)) } catch { throw CLIError("prompt \(n + 1): \(error)") }
            }
            try JSONOutput.data(results).write(to: URL(fileURLWithPath: out))
            printError("wrote \(results.count) prompts to \(out)")
        }
    }
}
