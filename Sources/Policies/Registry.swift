// Policies by name, with the papers' defaults: what `--policy`/`--policies` parse into, for the
// engine's compressed runs and for trace replay alike (DESIGN.md: a policy is implemented once).

/// A policy at its defaults, by the name users type.
public enum PolicyKind: String, CaseIterable, Sendable, Codable {
    case streamingLLM = "streamingllm"
    case h2o
    case snapKV = "snapkv"
    case pyramidKV = "pyramidkv"
    case adaKV = "adakv"
    case chunkKV = "chunkkv"
    case kvCompress = "kvcompress"
    case compressKV = "compresskv"

    /// The names, in catalogue order, for error messages and help.
    public static var names: [String] { allCases.map(\.rawValue) }

    /// Parses a name (case-insensitive).
    /// - Throws: `PolicyError` listing the known names.
    public init(parsing name: String) throws {
        guard let kind = PolicyKind(rawValue: name.lowercased()) else {
            throw PolicyError("unknown policy '\(name)' (known: \(PolicyKind.names.joined(separator: ", ")))")
        }
        self = kind
    }

    /// The tokens every selection keeps whatever the budget (the observation window, or
    /// StreamingLLM's sinks): a smaller budget is an error.
    public var window: Int {
        switch self {
        case .kvCompress: KVCompress().window
        case .compressKV: CompressKV.defaultWindow
        default: prefillPolicy!.window
        }
    }

    /// True when the policy needs a head profile (`HeadProfile`).
    public var needsProfile: Bool { self == .compressKV }

    var prefillPolicy: Policy? {
        switch self {
        case .streamingLLM: .streamingLLM()
        case .h2o: .h2o()
        case .snapKV: .snapKV()
        case .pyramidKV: .pyramidKV()
        case .adaKV: .adaKV()
        case .chunkKV: .chunkKV()
        case .kvCompress, .compressKV: nil
        }
    }

    /// The selection of this policy at `budget` tokens per layer per KV head (window included).
    /// - Throws: `PolicyError` for a budget below the window, a missing profile or statistics.
    public func select(_ layers: [LayerStatistics], budget: Int, profile: HeadProfile? = nil) throws -> Selection {
        switch self {
        case .kvCompress:
            return try KVCompress().select(layers, budget: budget)
        case .compressKV:
            guard let profile else {
                throw PolicyError("compresskv needs a head profile (Semantic Retrieval Head scores per layer): --profile FILE.json")
            }
            return try CompressKV(profile: profile).select(layers, budget: budget)
        default:
            return try prefillPolicy!.select(layers, budget: budget)
        }
    }

    /// The statistics windows this policy reads: (w, squared).
    public var windowsRead: [(window: Int, squared: Bool)] {
        switch self {
        case .streamingLLM, .h2o: []
        case .kvCompress: [(KVCompress().window, true)]
        case .compressKV: [(CompressKV.defaultWindow, false)]
        default: [(prefillPolicy!.window, false)]
        }
    }
}
