import Foundation

/// A real run recorded with a trace, as an annotation `outcome.LABEL` (LABEL "full" for the full
/// cache, `POLICY@BUDGET` for a compressed one): whether the answer was found, the generated ids
/// and text (Docs/trace-format.md). The recorder writes it; replay reads it.
public struct RunOutcome: Codable, Sendable, Equatable {
    /// The greedy continuation contains the task's answer where the task expects it.
    public var correct: Bool
    public var tokens: [Int32]
    public var text: String

    public init(correct: Bool, tokens: [Int32], text: String) {
        self.correct = correct
        self.tokens = tokens
        self.text = text
    }

    /// Annotation keys of outcomes start with this.
    public static let keyPrefix = "outcome."

    /// The annotation key of the run labelled `label`.
    public static func key(_ label: String) -> String { keyPrefix + label }

    /// The run's label in an annotation key, nil for another annotation.
    public static func label(ofKey key: String) -> String? {
        key.hasPrefix(keyPrefix) ? String(key.dropFirst(keyPrefix.count)) : nil
    }

    /// The annotation's value: compact canonical JSON.
    public var annotationValue: String { String(decoding: (try? TraceJSON.encode(self)) ?? [], as: UTF8.self) }

    /// The outcome in an annotation's value; nil when it is not one.
    public init?(annotationValue: String) {
        guard let decoded = try? JSONDecoder().decode(RunOutcome.self, from: Data(annotationValue.utf8)) else { return nil }
        self = decoded
    }
}
