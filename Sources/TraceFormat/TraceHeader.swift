import Foundation

/// The header metadata of a trace: which model ran, on which task, produced by what.
///
/// Stored as UTF-8 JSON (sorted keys, snake_case) right after the fixed file header, so any
/// language reads it without decompressing anything. Optional fields may be absent; readers
/// ignore keys they do not know.
public struct TraceHeader: Codable, Equatable, Sendable {
    /// The model that produced the trace.
    public var model: ModelIdentity
    /// What was run.
    public var task: TaskDescription
    /// The program and version that wrote the file, e.g. "ckv-sim 0.1.0".
    public var producer: String
    /// Free-form facts (engine settings, host); never parsed by the tools.
    public var notes: [String: String]

    public init(model: ModelIdentity, task: TaskDescription, producer: String, notes: [String: String] = [:]) {
        self.model = model
        self.task = task
        self.producer = producer
        self.notes = notes
    }
}

/// The identity and shape of the model a trace was recorded from.
public struct ModelIdentity: Codable, Equatable, Sendable {
    public var name: String
    /// GGUF `general.architecture`, e.g. "llama", "gemma3".
    public var architecture: String
    /// sha256 of the GGUF file the weights came from, lowercase hex (absent for weights loaded
    /// from a Hugging Face checkpoint, which `hfID` names).
    public var ggufSHA256: String?
    /// The Hugging Face repository (or local checkpoint name) the weights came from, and its
    /// revision (a commit hash) when known: written by the Hugging Face recorder.
    public var hfID: String?
    public var hfRevision: String?
    public var layers: Int
    public var queryHeads: Int
    public var kvHeads: Int
    public var headDim: Int
    public var contextLength: Int
    /// Sliding-window size of local layers, if the model has any.
    public var slidingWindow: Int?
    /// Layers that attend globally when the model has sliding-window layers.
    public var globalLayers: [Int]?

    public init(name: String, architecture: String, ggufSHA256: String?, hfID: String? = nil, hfRevision: String? = nil, layers: Int, queryHeads: Int,
                kvHeads: Int, headDim: Int, contextLength: Int, slidingWindow: Int? = nil, globalLayers: [Int]? = nil) {
        self.name = name
        self.architecture = architecture
        self.ggufSHA256 = ggufSHA256
        self.hfID = hfID
        self.hfRevision = hfRevision
        self.layers = layers
        self.queryHeads = queryHeads
        self.kvHeads = kvHeads
        self.headDim = headDim
        self.contextLength = contextLength
        self.slidingWindow = slidingWindow
        self.globalLayers = globalLayers
    }

    /// What makes the identity or shape unusable (no weights named, each count 1…2¹⁴, KV heads dividing the query heads, a
    /// sliding window of at least one token, global layers inside the layer count), or nil.
    public var shapeProblem: String? {
        guard ggufSHA256 != nil || hfID != nil else { return "model has neither gguf_sha256 nor hf_id: nothing says which weights ran" }
        for (key, v) in [("layers", layers), ("query_heads", queryHeads), ("kv_heads", kvHeads), ("head_dim", headDim)] {
            guard (1...(1 << 14)).contains(v) else { return "model.\(key) is \(v); it must be between 1 and \(1 << 14)" }
        }
        guard (1...(1 << 28)).contains(contextLength) else { return "model.context_length is \(contextLength); it must be between 1 and \(1 << 28)" }
        guard queryHeads % kvHeads == 0 else { return "model.kv_heads \(kvHeads) does not divide model.query_heads \(queryHeads)" }
        if let w = slidingWindow, w < 1 { return "model.sliding_window is \(w); it must be at least 1" }
        if let g = globalLayers, let bad = g.first(where: { !(0..<layers).contains($0) }) {
            return "model.global_layers holds \(bad), outside the \(layers) layers"
        }
        return nil
    }

    enum CodingKeys: String, CodingKey {
        case name, architecture, layers
        case ggufSHA256 = "gguf_sha256"
        case hfID = "hf_id"
        case hfRevision = "hf_revision"
        case queryHeads = "query_heads"
        case kvHeads = "kv_heads"
        case headDim = "head_dim"
        case contextLength = "context_length"
        case slidingWindow = "sliding_window"
        case globalLayers = "global_layers"
    }
}

/// The task a trace records: its kind, the seed that generated it and its parameters.
public struct TaskDescription: Codable, Equatable, Sendable {
    /// e.g. "passkey", "needle", "qa".
    public var kind: String
    public var seed: UInt64
    public var promptTokens: Int
    /// Task-specific settings (depth, needle, expected answer text …) as strings.
    public var parameters: [String: String]

    public init(kind: String, seed: UInt64, promptTokens: Int, parameters: [String: String] = [:]) {
        self.kind = kind
        self.seed = seed
        self.promptTokens = promptTokens
        self.parameters = parameters
    }

    enum CodingKeys: String, CodingKey {
        case kind, seed, parameters
        case promptTokens = "prompt_tokens"
    }
}

/// The JSON inside trace files (the header, annotation values): compact, keys sorted, slashes
/// unescaped, so the same value always gives the same bytes.
public enum TraceJSON {
    public static func encode(_ value: some Encodable) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(value))
    }
}

extension TraceHeader {
    /// Deterministic JSON: same header, same bytes.
    func encodedJSON() throws -> [UInt8] { try TraceJSON.encode(self) }

    static func decode(json: UnsafeRawBufferPointer) throws -> TraceHeader {
        try JSONDecoder().decode(TraceHeader.self, from: Data(json))
    }
}
