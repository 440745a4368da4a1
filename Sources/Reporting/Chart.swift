import Foundation

// SVG line charts: one renderer for the plan's HTML page and the accuracy report's charts. Plain
// SVG 1.1, no scripts or external resources, the same bytes for the same input.

public enum SVGChart {
    /// Colours in series order.
    public static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f"]

    /// A named series of (x, y) points, each with an optional interval (low, high) drawn as a whisker.
    public struct Series {
        public var name: String
        public var points: [(Double, Double)]
        public var intervals: [(Double, Double)]?
        public var color: String

        public init(name: String, points: [(Double, Double)], intervals: [(Double, Double)]? = nil, color: String) {
            self.name = name
            self.points = points
            self.intervals = intervals
            self.color = color
        }
    }

    /// A line chart with log-2 x when `logX`, linear y from 0 to `yMax` (default: 1.1 × the largest
    /// value), a dashed horizontal `baseline` when given.
    public static func line(title: String, xLabel: String, yLabel: String, series: [Series], logX: Bool, baseline: Double? = nil,
                            baselineLabel: String = "full cache", yMax: Double? = nil) -> String {
        let w = 520.0, h = 300.0, left = 64.0, right = 130.0, top = 30.0, bottom = 44.0
        let xs = series.flatMap { $0.points.map(\.0) }
        let ys = series.flatMap { $0.points.map(\.1) + ($0.intervals?.map(\.1) ?? []) } + (baseline.map { [$0] } ?? [])
        guard let xmin0 = xs.min(), let xmax0 = xs.max(), let ymax0 = ys.max() else { return "" }
        func tx(_ x: Double) -> Double { logX ? log2(max(x, 1e-9)) : x }
        let xmin = tx(xmin0), xmax = max(tx(xmax0), xmin + 1e-9), ymax = yMax ?? (ymax0 > 0 ? ymax0 * 1.1 : 1)
        func px(_ x: Double) -> Double { left + (tx(x) - xmin) / (xmax - xmin) * (w - left - right) }
        func py(_ y: Double) -> Double { top + (1 - min(y, ymax) / ymax) * (h - top - bottom) }
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" viewBox=\"0 0 \(Int(w)) \(Int(h))\" role=\"img\" aria-label=\"\(HTML.escape(title))\">"
        svg += "<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>"
        svg += "<text x=\"\(Int(left))\" y=\"18\" font-size=\"14\" font-weight=\"bold\">\(HTML.escape(title))</text>"
        svg += "<line x1=\"\(left)\" y1=\"\(h - bottom)\" x2=\"\(w - right)\" y2=\"\(h - bottom)\" stroke=\"#333\"/>"
        svg += "<line x1=\"\(left)\" y1=\"\(top)\" x2=\"\(left)\" y2=\"\(h - bottom)\" stroke=\"#333\"/>"
        for i in 0...4 {
            let y = ymax * Double(i) / 4
            svg += "<line x1=\"\(left)\" y1=\"\(py(y))\" x2=\"\(w - right)\" y2=\"\(py(y))\" stroke=\"#eee\"/>"
            svg += "<text x=\"\(left - 6)\" y=\"\(py(y) + 4)\" font-size=\"10\" text-anchor=\"end\">\(Format.figure(y))</text>"
        }
        // Log axes label their few distinct values (budgets, fractions); linear axes 5 even ticks.
        let ticks = logX ? Array(Set(xs)).sorted() : (0...4).map { xmin0 + (xmax0 - xmin0) * Double($0) / 4 }
        for x in ticks {
            let label = logX ? (x >= 1 ? Format.figure(x) : Format.percent(x)) : Format.figure(x)
            svg += "<text x=\"\(px(x))\" y=\"\(h - bottom + 14)\" font-size=\"10\" text-anchor=\"middle\">\(label)</text>"
        }
        svg += "<text x=\"\((left + w - right) / 2)\" y=\"\(h - 8)\" font-size=\"11\" text-anchor=\"middle\">\(HTML.escape(xLabel))</text>"
        svg += "<text x=\"14\" y=\"\((top + h - bottom) / 2)\" font-size=\"11\" text-anchor=\"middle\" transform=\"rotate(-90 14 \((top + h - bottom) / 2))\">\(HTML.escape(yLabel))</text>"
        if let baseline {
            svg += "<line x1=\"\(left)\" y1=\"\(py(baseline))\" x2=\"\(w - right)\" y2=\"\(py(baseline))\" stroke=\"#000\" stroke-dasharray=\"4 3\"/>"
            svg += "<text x=\"\(left + 4)\" y=\"\(py(baseline) - 4)\" font-size=\"10\">\(HTML.escape(baselineLabel))</text>"
        }
        for (i, s) in series.enumerated() where !s.points.isEmpty {
            let color = s.color
            // Series sharing an x are nudged apart by a pixel or two so their whiskers stay visible.
            let nudge = s.intervals == nil ? 0 : (Double(i) - Double(series.count - 1) / 2) * 2
            let order = s.points.indices.sorted { s.points[$0].0 < s.points[$1].0 }
            let pts = order.map { "\(px(s.points[$0].0) + nudge),\(py(s.points[$0].1))" }.joined(separator: " ")
            svg += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" points=\"\(pts)\"/>"
            for j in s.points.indices {
                let (x, y) = s.points[j]
                if let band = s.intervals?[j] {
                    svg += "<line x1=\"\(px(x) + nudge)\" y1=\"\(py(band.0))\" x2=\"\(px(x) + nudge)\" y2=\"\(py(band.1))\" stroke=\"\(color)\" stroke-width=\"1\" opacity=\"0.6\"/>"
                }
                svg += "<circle cx=\"\(px(x) + nudge)\" cy=\"\(py(y))\" r=\"3\" fill=\"\(color)\"/>"
            }
            let ly = top + 14 * Double(i)
            svg += "<rect x=\"\(w - right + 8)\" y=\"\(ly)\" width=\"10\" height=\"10\" fill=\"\(color)\"/>"
            svg += "<text x=\"\(w - right + 22)\" y=\"\(ly + 9)\" font-size=\"11\">\(HTML.escape(s.name))</text>"
        }
        return svg + "</svg>"
    }
}
