import ArgumentParser
import Foundation
import Policies

/// Parses `--policy NAME` into the selection the engine and replay apply.
enum PolicyChoice {
    static let names = PolicyKind.names

    /// The selector for `name` at `budget` tokens per layer per KV head; `continual: false`
    /// compresses once after the prompt even for a policy that evicts during decode.
    /// - Throws: `CLIError` naming the known policies, or what CompressKV needs.
    static func selector(_ name: String, budget: Int, profile: String?, continual: Bool = true) throws -> ([LayerStatistics]) throws -> Compression {
        let kind = try cli { try PolicyKind(parsing: name) }
        let loaded = try profile.map(loadProfile)
        if kind.needsProfile, loaded == nil {
            throw CLIError("compresskv needs a head profile: --profile FILE.json (Semantic Retrieval Head scores per layer)")
        }
        return { try kind.compress($0, budget: budget, profile: loaded, continual: continual) }
    }

    /// Reads a head profile written by `ckv-sim heads identify`.
    static func loadProfile(_ path: String) throws -> HeadProfile {
        guard let data = FileManager.default.contents(atPath: path) else { throw CLIError("\(path): cannot read the head profile") }
        do { return try JSONDecoder().decode(HeadProfile.self, from: data) } catch {
            throw CLIError("\(path): not a head profile (\(error.localizedDescription))")
        }
    }
}

/// Runs `body`, turning a `PolicyError` into a one-line `CLIError`.
func cli<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch let error as PolicyError { throw CLIError(error.description) }
}
