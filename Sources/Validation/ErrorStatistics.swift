/// How a set of errors is summarised, one rule for every validation table and error band.
enum ErrorStatistics {
    /// The middle value (the mean of the two middle ones for an even count); nil for none.
    static func median(_ xs: [Double]) -> Double? {
        let s = xs.sorted()
        guard !s.isEmpty else { return nil }
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    /// The nearest-rank 90th percentile; nil for none.
    static func percentile90(_ xs: [Double]) -> Double? {
        let s = xs.sorted()
        guard !s.isEmpty else { return nil }
        return s[min(s.count - 1, Int((0.9 * Double(s.count)).rounded(.up)) - 1)]
    }
}
