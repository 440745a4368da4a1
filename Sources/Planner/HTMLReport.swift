import Foundation
import Reporting

// A self-contained HTML page: the settings, the table, the recommendation and SVG charts
// (throughput vs budget per policy, accuracy proxy vs kv-fraction, memory per request, latency
// vs rate, SLO rate vs TTFT with its Pareto frontier; with a fleet, cost vs accuracy loss and GPUs
// vs rate). No scripts, no external resources.

extension PlanReport {
    typealias Series = SVGChart.Series

    /// Cost per million output tokens against the accuracy loss the recommendation uses: per
    /// policy its cheapest fleet at each budget (over every GPU × TP searched), and the Pareto
    /// frontier of all options (none cheaper at a loss as small or smaller), in black.
    func fleetParetoChart(_ f: FleetReport, color: (String) -> String) -> String {
        let known = f.options.filter { $0.accuracyLoss != nil }
        func point(_ o: FleetOption) -> (Double, Double) { (100 * o.accuracyLoss!, o.sizing.usdPerMillionOutputTokens) }
        let policies = Array(Set(known.map(\.policy))).sorted { ($0 == "full" ? "" : $0) < ($1 == "full" ? "" : $1) }
        var series = policies.map { p -> Series in
            let cheapest = Dictionary(grouping: known.filter { $0.policy == p }) { $0.budget ?? -1 }.values.compactMap { group in
                group.min { $0.sizing.usdPerMillionOutputTokens < $1.sizing.usdPerMillionOutputTokens }
            }
            return Series(name: p, points: cheapest.map(point).sorted { $0 < $1 }, color: p == "full" ? "#7f7f7f" : color(p))
        }
        var frontier: [(Double, Double)] = []
        for o in known.sorted(by: { point($0) < point($1) }) where frontier.last.map({ point(o).1 < $0.1 }) ?? true { frontier.append(point(o)) }
        series.append(Series(name: "Pareto frontier", points: frontier, color: "#000"))
        return SVGChart.line(title: "Cost vs accuracy loss at \(Format.figure(f.targetRate)) req/s",
                              xLabel: "accuracy loss the recommendation uses (%)", yLabel: "$ per million output tokens",
                              series: series, logX: false)
    }

    /// Each configuration's highest SLO-meeting rate against its TTFT p90 there: per policy its
    /// budgets, and the Pareto frontier over all (no configuration carrying more at a TTFT as
    /// low or lower), in black.
    func throughputLatencyChart(color: (String) -> String) -> String {
        let met = rows.compactMap { r in r.latency.map { (r, (r.sloRate, $0.ttft.p90 / 1000)) } }
        let policies = Array(Set(met.map(\.0.policy))).sorted { ($0 == "full" ? "" : $0) < ($1 == "full" ? "" : $1) }
        var series = policies.map { p in
            Series(name: p, points: met.filter { $0.0.policy == p }.map(\.1), color: p == "full" ? "#7f7f7f" : color(p))
        }
        var frontier: [(Double, Double)] = []
        // Highest rate first; a point joins when its TTFT is below every point carrying more.
        for p in met.map(\.1).sorted(by: { $0.0 != $1.0 ? $0.0 > $1.0 : $0.1 < $1.1 }) where frontier.last.map({ p.1 < $0.1 }) ?? true {
            frontier.append(p)
        }
        series.append(Series(name: "Pareto frontier", points: frontier, color: "#000"))
        return SVGChart.line(title: "SLO-meeting rate vs TTFT p90, one replica", xLabel: "highest rate meeting the SLOs (req/s)", yLabel: "TTFT p90 there (s)",
                              series: series, logX: false, baseline: sloTTFTSeconds, baselineLabel: "TTFT SLO")
    }

    /// GPUs a fleet of each policy needs against the arrival rate (the full cache and each
    /// policy at the budget whose fleet at the target is cheapest), each point a cluster search.
    func gpusByRateChart(color: (String) -> String) -> String {
        let sized = rows.filter { !$0.gpusByRate.isEmpty }
        let policies = Array(Set(sized.map(\.policy))).sorted { ($0 == "full" ? "" : $0) < ($1 == "full" ? "" : $1) }
        let series = policies.compactMap { p -> Series? in
            guard let best = sized.filter({ $0.policy == p }).min(by: { ($0.fleet?.gpus ?? .max, -($0.budget ?? .max)) < ($1.fleet?.gpus ?? .max, -($1.budget ?? .max)) }) else { return nil }
            return Series(name: best.budget.map { "\(p) @\($0)" } ?? "full", points: best.gpusByRate.map { ($0.rate, Double($0.gpus)) },
                          color: p == "full" ? "#7f7f7f" : color(p))
        }
        guard !series.isEmpty else { return "" }
        return SVGChart.line(title: "GPUs needed vs arrival rate (\(gpu) × \(tensorParallel))", xLabel: "Poisson arrival rate (req/s)", yLabel: "GPUs",
                              series: series, logX: false)
    }

    /// Horizontal bars: nominal and physical KV per request per configuration.
    func memoryChart() -> String {
        let configs = rows.filter { $0.budget != nil }
        let barH = 12.0, gap = 8.0, left = 150.0, w = 560.0
        let h = 40 + Double(configs.count) * (2 * barH + gap) + 20
        let maxBytes = configs.map { max($0.physicalBytes, $0.nominalBytes) }.max() ?? 1
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" role=\"img\" aria-label=\"KV memory per request\">"
        svg += "<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/><text x=\"10\" y=\"18\" font-size=\"14\" font-weight=\"bold\">KV per request after compression (longest request)</text>"
        svg += "<rect x=\"\(left)\" y=\"26\" width=\"10\" height=\"8\" fill=\"#9ecae1\"/><text x=\"\(left + 14)\" y=\"34\" font-size=\"10\">nominal</text>"
        svg += "<rect x=\"\(left + 70)\" y=\"26\" width=\"10\" height=\"8\" fill=\"#3182bd\"/><text x=\"\(left + 84)\" y=\"34\" font-size=\"10\">physical (trace-driven blocks)</text>"
        for (i, r) in configs.enumerated() {
            let y = 42 + Double(i) * (2 * barH + gap)
            let scale = (w - left - 90) / maxBytes
            svg += "<text x=\"\(left - 6)\" y=\"\(y + barH + 4)\" font-size=\"10\" text-anchor=\"end\">\(HTML.escape("\(r.policy) @\(r.budget!)"))</text>"
            svg += "<rect x=\"\(left)\" y=\"\(y)\" width=\"\(max(1, r.nominalBytes * scale))\" height=\"\(barH)\" fill=\"#9ecae1\"/>"
            svg += "<rect x=\"\(left)\" y=\"\(y + barH)\" width=\"\(max(1, r.physicalBytes * scale))\" height=\"\(barH)\" fill=\"#3182bd\"/>"
            svg += "<text x=\"\(left + max(1, r.physicalBytes * scale) + 4)\" y=\"\(y + 2 * barH - 2)\" font-size=\"10\">\(Format.gib(r.physicalBytes))</text>"
        }
        return svg + "</svg>"
    }

    /// The whole page.
    public var html: String {
        let policies = Array(Set(rows.compactMap { $0.budget == nil ? nil : $0.policy })).sorted()
        // One colour per policy in every chart; the full cache is black.
        func color(_ policy: String) -> String {
            policies.firstIndex(of: policy).map { SVGChart.palette[$0 % SVGChart.palette.count] } ?? "#000"
        }
        func series(_ value: (PlanRow) -> Double?, x: (PlanRow) -> Double) -> [Series] {
            policies.map { p in Series(name: p, points: rows.filter { $0.policy == p }.compactMap { r in value(r).map { (x(r), $0) } }, color: color(p)) }
        }
        let full = rows.first
        let throughput = SVGChart.line(title: "Saturated output tokens/s vs budget", xLabel: "budget (tokens per layer per KV head)", yLabel: "output tok/s",
                                        series: series({ $0.saturation.outputTokensPerSecond }, x: { Double($0.budget!) }), logX: true,
                                        baseline: full?.saturation.outputTokensPerSecond)
        // (y capped at 3× the SLO so the curves near it stay readable)
        let accuracy = SVGChart.line(title: "Attention mass kept (replay) vs kv-fraction", xLabel: "kv-fraction", yLabel: "attention mass",
                                      series: series({ $0.accuracy.traces?.attentionMass }, x: \.kvFraction), logX: true, baseline: 1)
        // Latency vs rate: the rates the SLO search simulated, full cache and each policy at its
        // smallest budget (the most compression).
        let smallest = policies.compactMap { p in rows.filter { $0.policy == p }.min { ($0.budget ?? 0) < ($1.budget ?? 0) } }
        let latencyRows = (full.map { [$0] } ?? []) + smallest
        let latency = SVGChart.line(title: "TTFT p90 vs arrival rate", xLabel: "Poisson arrival rate (req/s)", yLabel: "TTFT p90 (s)",
                                     series: latencyRows.map { r in
                                         Series(name: r.budget.map { "\(r.policy) @\($0)" } ?? "full", points: r.curve.map { ($0.rate, min($0.ttftP90 / 1000, sloTTFTSeconds * 3)) },
                                                color: color(r.policy))
                                     }, logX: false, baseline: sloTTFTSeconds, baselineLabel: "TTFT SLO")
        var page = "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>\(HTML.escape("ckv-sim plan: \(model) on \(gpu)"))</title>"
        page += "<style>body{font-family:system-ui,sans-serif;margin:24px;color:#222}table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}td:first-child,th:first-child,td:last-child{text-align:left}.charts{display:flex;flex-wrap:wrap;gap:16px}.rec{background:#eef6ee;padding:10px;border-left:4px solid #2ca02c}</style></head><body>"
        page += "<h1>\(HTML.escape("KV-cache sizing: \(model) on \(gpu), \(context)-token context"))</h1>"
        page += Table(pairs: settings).html
        if let f = fleet {
            let (heading, lines) = fleetLines(f)
            page += "<h2>\(HTML.escape(heading))</h2>"
            page += "<div class=\"charts\">\(fleetParetoChart(f, color: color))\(gpusByRateChart(color: color))</div>"
            page += fleetTable(f, limit: nil).html
            page += "<ul>" + lines.map { "<li>\(HTML.escape($0))</li>" }.joined() + "</ul>"
        }
        page += "<h2>Recommendation\(fleet == nil ? "" : HTML.escape(" for one replica of \(gpu) × \(tensorParallel)"))</h2><p class=\"rec\">\(HTML.escape(recommendation))</p>"
        page += "<h2>Charts</h2><div class=\"charts\">\(throughput)\(accuracy)\(memoryChart())\(latency)\(throughputLatencyChart(color: color))</div>"
        page += "<h2>Configurations</h2>" + configurations.html
        page += "<h2>Sources and caveats</h2><ul>" + notes.map { "<li>\(HTML.escape($0))</li>" }.joined() + "</ul>"
        return page + "</body></html>\n"
    }
}
