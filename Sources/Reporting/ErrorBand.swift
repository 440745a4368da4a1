import Foundation

/// The validated error of one class of prediction: how far the model was from the measurements
/// it was not fitted to.
public struct ErrorBand: Codable, Sendable, Equatable {
    public init(kind: String, corpus: String, points: Int, medianPercent: Double, p90Percent: Double) {
        self.kind = kind
        self.corpus = corpus
        self.points = points
        self.medianPercent = medianPercent
        self.p90Percent = p90Percent
    }

    /// "kv-capacity".
    public var kind: String
    /// What the band was measured on.
    public var corpus: String
    public var points: Int
    public var medianPercent: Double
    /// The band printed beside a figure: the 90th percentile of the absolute errors.
    public var p90Percent: Double

    enum CodingKeys: String, CodingKey {
        case kind = "class", corpus, points
        case medianPercent = "median_abs_error_percent"
        case p90Percent = "p90_abs_error_percent"
    }

    /// "±3.6 %".
    public var label: String { String(format: "±%.1f %%", p90Percent) }
}
