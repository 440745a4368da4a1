import Foundation
import Testing
import TestSupport
@testable import Hardware
import Policies
import SeededRandom
@testable import Simulator

/// Seeded damaged and hand-crafted scenarios and config.json files: each loads and runs, or is
/// refused with one line naming the file; none traps (a trap ends the test process) or runs
/// without bound.
@Suite("fuzzed scenarios and model configs")
struct FuzzTests {
    /// Values that broke readers before (issue #21) and their neighbours.
    static let nasty: [String] = ["0", "-1", "-4096", "1", "1e30", "1e300", "-1e300", "9223372036854775807", "-9223372036854775808", "4294967295",
                                  "0.0000001", "1000000", "1000000000", "\"abc\"", "null", "[]", "{}", "true", ".nan", ".inf"]

    static let baseScenario = """
    name: fuzz
    seed: 3
    arrivals:
      process: gamma
      rate: 4
      cv: 2
    requests: 50
    prompt: {distribution: lognormal, median: 2000, sigma: 0.8, min: 16, max: 8000}
    output: {distribution: normal, mean: 200, sd: 50, min: 1, max: 1000}
    serving:
      max_num_seqs: 64
      max_num_batched_tokens: 4096
      gpu_memory_utilization: 0.9
    """

    /// One seeded mutation of `text`: a number replaced by a nasty value, a line dropped, or two
    /// numbers swapped.
    static func mutate(_ text: String, _ rng: inout SplitMix64) -> String {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let numbers = try! NSRegularExpression(pattern: #"-?\d+(\.\d+)?"#)
        for _ in 0..<(1 + Int(rng.next() % 3)) {
            let i = Int(rng.next() % UInt64(lines.count))
            switch rng.next() % 4 {
            case 0:
                lines.remove(at: i)
                if lines.isEmpty { lines = [""] }
            default:
                let line = lines[i]
                let matches = numbers.matches(in: line, range: NSRange(line.startIndex..., in: line))
                guard !matches.isEmpty else { continue }
                let m = matches[Int(rng.next() % UInt64(matches.count))]
                let value = nasty[Int(rng.next() % UInt64(nasty.count))]
                lines[i] = (line as NSString).replacingCharacters(in: m.range, with: value)
            }
        }
        return lines.joined(separator: "\n")
    }

    @Test("600 mutated scenarios: each runs (20 requests) or is refused in one line naming the file")
    func scenarios() throws {
        var rng = SplitMix64(seed: 21)
        let gpu = GPUCatalog.named("A100-80G")!, model = ModelCatalog.named("Llama-3.1-8B-Instruct")!
        var ran = 0, refused = 0
        for i in 0..<600 {
            let text = Self.mutate(Self.baseScenario, &rng)
            let path = try TestSupport.temporaryFile("fuzz-\(i).yaml", text)
            do {
                let s = try Scenario.load(path: path)
                let serving = try s.serving(gpu: gpu, model: model)
                try s.validate(model: model, serving: serving)
                let largest = s.prompt.map { ($0.maximum, s.output!.maximum) }
                let r = try Simulation.run(gpu: gpu, model: model, serving: serving, source: try s.source(requests: 20), largest: largest, timeSeries: false)
                #expect(r.completed + r.rejected == r.requests, "\(text)")
                ran += 1
            } catch let e as CustomStringConvertible & Error {
                let line = e.description
                #expect(!line.contains("\n") && !line.isEmpty, "\(text)\n→ \(line)")
                #expect(line.contains("fuzz-\(i).yaml") || e is CapacityError, "\(text)\n→ \(line)")
                refused += 1
            }
        }
        // Both outcomes occur: the mutations are neither all harmless nor all fatal.
        #expect(ran > 50 && refused > 50, "ran \(ran), refused \(refused)")
    }

    static let baseConfig: [String: String] = [
        "hidden_size": "4096", "num_attention_heads": "32", "num_key_value_heads": "8", "num_hidden_layers": "32", "intermediate_size": "14336",
        "vocab_size": "128256", "max_position_embeddings": "131072", "head_dim": "128",
        "rope_scaling": #"{"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}"#,
    ]

    @Test("600 config.json files with one or two fields set to nasty values: each sizes a deployment or is refused in one line")
    func configs() throws {
        var rng = SplitMix64(seed: 34)
        // JSON literals, written as they would appear in a file.
        let values = ["0", "-1", "-4096", "1", "3", "5", "1e30", "1e300", "-1e300", "9223372036854775807", "-9223372036854775808",
                      "4294967295", "0.5", "\"abc\"", "null", "[]", "1e15"]
        let keys = ["hidden_size", "num_attention_heads", "num_key_value_heads", "num_hidden_layers", "intermediate_size", "vocab_size",
                    "max_position_embeddings", "head_dim", "num_experts", "num_experts_per_tok", "rope_factor"]
        let gpu = GPUCatalog.named("H100")!
        var sized = 0, refused = 0
        for _ in 0..<600 {
            var c = Self.baseConfig
            for _ in 0..<(1 + Int(rng.next() % 2)) {
                let key = keys[Int(rng.next() % UInt64(keys.count))]
                let value = values[Int(rng.next() % UInt64(values.count))]
                if key == "rope_factor" {
                    c["rope_scaling"] = #"{"rope_type": "yarn", "factor": \#(value), "original_max_position_embeddings": 32768}"#
                } else {
                    c[key] = value
                }
            }
            let dir = try TestSupport.scratchDirectory("fuzz-config")
            let path = dir.appendingPathComponent("config.json").path
            let json = "{" + c.keys.sorted().map { "\"\($0)\": \(c[$0]!)" }.joined(separator: ", ") + "}"
            try json.write(toFile: path, atomically: true, encoding: .utf8)
            do {
                let m = try ModelSpec.fromHFConfig(path: path)
                var settings = ServingSettings()
                settings.maxModelLen = min(m.maxContext, 8192)
                let plan = try MemoryPlan(gpu: gpu, model: m, serving: try settings.resolve(gpu: gpu, model: m))
                var work = StepWork()
                work.prefillTokens = 512
                work.prefillSequences = 1
                work.prefillAttentionArea = 512 * 256
                work.logitRows = 1
                let t = CostModel(gpu: gpu, model: m, serving: plan.serving).stepTime(work).total
                #expect(t.isFinite && t > 0, "\(c)")
                sized += 1
            } catch let e as CustomStringConvertible & Error {
                #expect(!e.description.contains("\n"), "\(c)\n→ \(e.description)")
                #expect(e.description.contains(path) || e is CapacityError, "\(c)\n→ \(e.description)")
                refused += 1
            }
        }
        #expect(sized > 50 && refused > 50, "sized \(sized), refused \(refused)")
    }
}

@Suite("fuzzed request logs")
struct LogFuzzTests {
    @Test("400 mutated Azure and Mooncake logs: each reads or is refused in one line naming the file and line")
    func logs() throws {
        var rng = SplitMix64(seed: 55)
        let azure = "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,374,44\n2023-11-16 18:15:50.9951690,396,109\n2023-11-16 18:15:51.0000000,1000,10\n"
        let mooncake = #"{"timestamp": 0, "input_length": 6955, "output_length": 52, "hash_ids": [46, 47]}"# + "\n"
            + #"{"timestamp": 1500, "input_length": 120, "output_length": 8}"# + "\n" + #"{"timestamp": 2500, "input_length": 900, "output_length": 30}"# + "\n"
        var read = 0, refused = 0
        for i in 0..<400 {
            let format: LogFormat = i % 2 == 0 ? .azure : .mooncake
            let text = FuzzTests.mutate(format == .azure ? azure : mooncake, &rng)
            let path = try TestSupport.temporaryFile("log-\(i).\(format == .azure ? "csv" : "jsonl")", text)
            do {
                var source = try LogSource(path: path, format: format)
                var n = 0, last: Int64 = .min
                while let r = source.next() {
                    #expect(r.arrival >= last && r.promptTokens >= 1 && r.outputTokens >= 1)
                    last = r.arrival
                    n += 1
                }
                #expect(n >= 1)
                read += 1
            } catch let e as WorkloadError {
                #expect(!e.description.contains("\n") && e.description.contains("log-\(i)."), "\(text)\n→ \(e.description)")
                refused += 1
            }
        }
        #expect(read > 30 && refused > 30, "read \(read), refused \(refused)")
    }
}
