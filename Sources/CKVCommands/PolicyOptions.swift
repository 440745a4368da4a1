import ArgumentParser
import Foundation
import Policies
import Simulator

/// Parses `--policy NAME` into the selection the engine and replay apply.
enum PolicyChoice {
    /// The policies the engine applies: the simulator's names, without full cache.
    static let names = PolicyName.allCases.filter { $0 != .full }.map(\.rawValue)

    /// The selector for `name` at `budget` tokens per layer per KV head.
    /// - Throws: `CLIError` naming the known policies, or what CompressKV needs.
    static func selector(_ name: String, budget: Int, profile: String?) throws -> ([LayerStatistics]) throws -> Selection {
        guard let policy = PolicyName(rawValue: name.lowercased()), policy != .full else {
            throw CLIError("unknown policy '\(name)' (known: \(names.joined(separator: ", ")))")
        }
        let prefill: Policy
        switch policy {
        case .full: preconditionFailure("excluded above")
        case .streamingLLM: prefill = .streamingLLM()
        case .h2o: prefill = .h2o()
        case .snapKV: prefill = .snapKV()
        case .pyramidKV: prefill = .pyramidKV()
        case .adaKV: prefill = .adaKV()
        case .chunkKV: prefill = .chunkKV()
        case .kvCompress:
            let p = KVCompress()
            return { try p.select($0, budget: budget) }
        case .compressKV:
            guard let profile else { throw CLIError("compresskv needs a head profile: --profile FILE.json (Semantic Retrieval Head scores per layer)") }
            guard let data = FileManager.default.contents(atPath: profile) else { throw CLIError("\(profile): cannot read the head profile") }
            let decoded: HeadProfile
            do { decoded = try JSONDecoder().decode(HeadProfile.self, from: data) } catch {
                throw CLIError("\(profile): not a head profile (\(error.localizedDescription))")
            }
            let p = CompressKV(profile: decoded)
            return { try p.select($0, budget: budget) }
        }
        return { try prefill.select($0, budget: budget) }
    }
}
