import ArgumentParser
import Foundation
import Policies

/// Parses `--policy NAME` into the selection the engine and replay apply.
enum PolicyChoice {
    static let names = ["streamingllm", "h2o", "snapkv", "pyramidkv", "adakv", "chunkkv", "kvcompress", "compresskv"]

    /// The selector for `name` at `budget` tokens per layer per KV head.
    /// - Throws: `CLIError` naming the known policies, or what CompressKV needs.
    static func selector(_ name: String, budget: Int, profile: String?) throws -> @Sendable ([LayerStatistics]) throws -> Selection {
        let policy: Policy? = switch name.lowercased() {
        case "streamingllm": .streamingLLM()
        case "h2o": .h2o()
        case "snapkv": .snapKV()
        case "pyramidkv": .pyramidKV()
        case "adakv": .adaKV()
        case "chunkkv": .chunkKV()
        default: nil
        }
        if let policy { return { try policy.select($0, budget: budget) } }
        switch name.lowercased() {
        case "kvcompress":
            let p = KVCompress()
            return { try p.select($0, budget: budget) }
        case "compresskv":
            guard let profile else { throw CLIError("compresskv needs a head profile: --profile FILE.json (Semantic Retrieval Head scores per layer)") }
            guard let data = FileManager.default.contents(atPath: profile) else { throw CLIError("\(profile): cannot read the head profile") }
            let decoded: HeadProfile
            do { decoded = try JSONDecoder().decode(HeadProfile.self, from: data) } catch {
                throw CLIError("\(profile): not a head profile (\(error.localizedDescription))")
            }
            let p = CompressKV(profile: decoded)
            return { try p.select($0, budget: budget) }
        default:
            throw CLIError("unknown policy '\(name)' (known: \(names.joined(separator: ", ")))")
        }
    }
}
