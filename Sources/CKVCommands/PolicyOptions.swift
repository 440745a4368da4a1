import ArgumentParser
import Foundation
import Policies

/// Parses `--policy NAME` into the selection the engine and replay apply.
enum PolicyChoice {
    static let names = PolicyKind.names

    /// The selector for `name` at `budget` tokens per layer per KV head; `continual: false`
    /// compresses once after the prompt even for a policy that evicts during decode.
    /// - Throws: `PolicyError` naming the known policies, `CLIError` for what CompressKV needs.
    static func selector(_ name: String, budget: Int, profile: String?, continual: Bool = true) throws -> ([LayerStatistics]) throws -> Compression {
        let kind = try PolicyKind(parsing: name)
        let loaded = try profile.map { try HeadProfile.load(path: $0) }
        if kind.needsProfile, loaded == nil {
            throw CLIError("compresskv needs a head profile: --profile FILE.json (Semantic Retrieval Head scores per layer)")
        }
        return { try kind.compress($0, budget: budget, profile: loaded, continual: continual) }
    }
}
