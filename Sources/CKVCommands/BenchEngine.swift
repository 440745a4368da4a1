import ArgumentParser
import Engine
import Foundation
import Reporting

/// `ckv-sim bench engine`: prefill and decode speed of the reference engine, with the prompt
/// `llamacpp-oracle speed` uses, so the two can be put side by side.
struct BenchEngine: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine",
        abstract: "Reference-engine prefill and decode tokens/s (2 threads) and peak RSS on a GGUF model."
    )

    @Option(help: "The GGUF model file.")
    var model: String

    @Option(help: "Prompt tokens (the filler text llamacpp-oracle speed uses, truncated to this length).")
    var context = 1024

    @Option(help: "Decode steps timed after the prefill.")
    var decode = 32

    @Option(help: "Worker threads.")
    var threads = 2

    @Option(help: "Output format: text, json.")
    var format: OutputFormat = .text

    func validate() throws {
        guard context > 1 else { throw ValidationError("--context must be at least 2") }
        guard decode > 0 else { throw ValidationError("--decode must be positive") }
        guard threads > 0 else { throw ValidationError("--threads must be positive") }
    }

    struct Result: Encodable {
        var model: String
        var promptTokens: Int
        var prefillTokensPerSecond: Double
        var decodeTokensPerSecond: Double
        var threads: Int
        var peakRSSBytes: Int
        var modelFileBytes: Int
        enum CodingKeys: String, CodingKey {
            case model, threads
            case promptTokens = "prompt_tokens"
            case prefillTokensPerSecond = "prefill_tok_s"
            case decodeTokensPerSecond = "decode_tok_s"
            case peakRSSBytes = "peak_rss_bytes"
            case modelFileBytes = "model_file_bytes"
        }
    }

    func run() async throws {
        let m = try LanguageModel(path: model)
        m.threads = threads
        let filler = Array(repeating: "the grass is green and the sky is blue while rivers run to the sea", count: 4000).joined(separator: " ")
        let tokens = Array(m.tokenizer.encode(filler).prefix(context))
        guard tokens.count + decode <= m.config.contextLength else {
            throw CLIError("--context \(context) + \(decode) decode steps exceed the model's context of \(m.config.contextLength)")
        }
        var cache = m.makeCache(tokens: tokens.count + decode)
        let clock = ContinuousClock()
        var logits: [Float] = []
        let prefill = clock.measure {
            logits = m.prefill(tokens, cache: &cache, chunk: 512)[0]
        }
        let decoding = clock.measure {
            for _ in 0..<decode {
                logits = m.forward([Int32(argmax(logits))], cache: &cache, logitsFor: .last)[0]
            }
        }
        let result = Result(model: model, promptTokens: tokens.count, prefillTokensPerSecond: Double(tokens.count) / prefill.seconds,
                            decodeTokensPerSecond: Double(decode) / decoding.seconds, threads: threads, peakRSSBytes: peakRSS(),
                            modelFileBytes: m.file.fileSize)
        switch format {
        case .json: print(try JSONOutput.string(result))
        case .text:
            print(Table(pairs: [
                ("model", model),
                ("prompt", "\(result.promptTokens) tokens, \(threads) threads"),
                ("prefill", "\(Format.fixed(result.prefillTokensPerSecond, 1)) tok/s"),
                ("decode", "\(Format.fixed(result.decodeTokensPerSecond, 1)) tok/s (\(decode) steps)"),
                ("peak RSS", "\(Format.bytes(UInt64(result.peakRSSBytes))) (model file \(Format.bytes(UInt64(result.modelFileBytes))))"),
            ]).text)
        }
    }
}
