import Foundation
import Replay
import Validation
import Reporting

// Rendering a plan: an aligned terminal table, Markdown, a self-contained HTML page with SVG
// charts, JSON (schema in Docs/cli.md) and CSV. Every renderer is a pure function of the report,
// so the same inputs give byte-identical output.

extension PlanReport {
    /// The header lines: every input and default.
    var settings: [(String, String)] {
        [
            ("GPU", "\(gpu) × \(tensorParallel) (tensor parallel)"),
            ("model", model),
            ("context", "\(context) tokens (longest request)"),
            ("scenario", "\(scenario): \(workload)"),
            ("cost model", costModel.description + (calibration.map { "; calibrated by \($0)" } ?? "")),
            ("serving", serving.summary),
            ("KV capacity", "\(Format.gib(kvCapacityBytes)) \(kvCapacityBand.label) (90th percentile error on \(kvCapacityBand.points) start-up logs held out of the fit)"),
            ("error bands", servingBands.servingSummary()),
            ("SLOs", "TTFT p90 ≤ \(Format.figure(sloTTFTSeconds)) s, TPOT p99 ≤ \(Format.figure(sloTPOTSeconds * 1000)) ms"),
            ("max accuracy loss", Format.percent(maxAccuracyLoss)),
        ]
    }

    var columns: [String] {
        func b(_ metric: ServingMetric) -> String { servingBands.band(metric).map { " \($0.label)" } ?? "" }
        return ["policy", "budget", "kv", "KV/request peak", "after (nominal)", "after (physical)", "max conc. \(kvCapacityBand.label)",
                "sat. req/s\(b(.throughput))", "sat. out tok/s\(b(.throughput))", "SLO req/s", "TTFT p50/p90/p99 s\(b(.ttft))",
                "TPOT p50/p90/p99 ms\(b(.tpot))"] + (namesPrefixes ? ["prefix hits"] : []) + ["accuracy (source)"]
    }

    /// The prefix cache's hit rate at the SLO rate, or why there is none.
    func prefixCell(_ r: PlanRow) -> String {
        guard let l = r.latency else { return "—" }
        return prefixHits(l.prefixHitRate, compressed: r.budget != nil, why: " (kept cache per request)")
    }

    /// A hit rate, or why there is none: a compressed configuration keeps a cache specific to each
    /// request (with the reason `why` appended), otherwise prefix caching is off.
    func prefixHits(_ rate: Double?, compressed: Bool, why: String = "") -> String {
        if let rate { return Format.percent(rate) }
        return compressed && serving.prefixCaching ? "none" + why : "off"
    }

    func cells(_ r: PlanRow) -> [String] {
        let lat = r.latency.map { l in
            (String(format: "%.2f/%.2f/%.2f", l.ttft.p50 / 1000, l.ttft.p90 / 1000, l.ttft.p99 / 1000),
             String(format: "%.0f/%.0f/%.0f", l.tpot.p50, l.tpot.p90, l.tpot.p99))
        } ?? ("—", "—")
        return [r.policy, r.budget.map(String.init) ?? "—", Format.percent(r.kvFraction), Format.gib(r.peakBytes), Format.gib(r.nominalBytes),
                Format.gib(r.physicalBytes) + Self.gap(r), String(r.maxConcurrent), Format.figure(r.saturation.requestsPerSecond),
                Format.figure(r.saturation.outputTokensPerSecond), r.sloRate > 0 ? Format.figure(r.sloRate) : "none", lat.0, lat.1]
            + (namesPrefixes ? [prefixCell(r)] : []) + [accuracyCell(r)]
    }

    /// The physical figure's excess over the nominal one, when it is at least 1 %.
    static func gap(_ r: PlanRow) -> String {
        guard r.nominalBytes > 0 else { return "" }
        let g = r.physicalBytes / r.nominalBytes - 1
        return abs(g) >= 0.01 ? String(format: " (%+.0f%%)", g * 100) : ""
    }

    func accuracyCell(_ r: PlanRow) -> String {
        guard r.budget != nil else { return "baseline" }
        var parts: [String] = []
        if let c = r.accuracy.corpus { parts.append(c.text + " [corpus]") }
        if let p = r.accuracy.published.first {
            parts.append("\(p.benchmark) \(Format.figure(p.score)) vs \(Format.figure(p.full)) [paper]")
        }
        if let t = r.accuracy.traces {
            let at = "at " + Format.percent(t.replayedFraction)
            if t.runs > 0 {
                let recorded = t.recordedFractions.reduce(0, +) / Double(t.recordedFractions.count)
                parts.append("\(t.correct)/\(t.runs) found vs \(t.fullCorrect)/\(t.fullRuns) full at \(Format.percent(recorded)) [ref. runs]")
            }
            parts.append(String(format: "mass %.2f, err %.2f %@ [replay]", t.attentionMass, t.outputError, at))
        }
        return parts.isEmpty ? "no measurement" : parts.joined(separator: "; ")
    }

    /// The fleet options, cheapest first (at most `limit` rows; nil: all).
    func fleetTable(_ f: FleetReport, limit: Int?) -> Table {
        func b(_ metric: ServingMetric) -> String { servingBands.band(metric).map { " \($0.label)" } ?? "" }
        let formats = Set(f.options.map(\.formats)).count > 1
        let columns = ["GPU", "TP"] + (formats ? ["weights/KV"] : []) + ["policy", "budget", "replicas", "GPUs", "$/GPU-h", "$/h", "GPU-h/day", "$/M out tok", "$/M tok",
                       "TTFT p90 s\(b(.ttft))", "TPOT p99 ms\(b(.tpot))", "goodput req/s"] + (namesPrefixes ? ["prefix hits"] : []) + ["accuracy loss"]
        let shown = limit.map { Array(f.options.prefix($0)) } ?? f.options
        let rows = shown.map { o -> [String] in
            let s = o.sizing
            let sizing: [String] = [o.gpu, String(o.tensorParallel)] + (formats ? [o.formats] : []) + [o.policy, o.budget.map(String.init) ?? "—", s.arrangement, String(s.gpus),
                                    String(format: "%.2f", s.usdPerGPUHour), String(format: "%.2f", s.usdPerHour), Format.figure(s.gpuHoursPerDay),
                                    String(format: "%.3f", s.usdPerMillionOutputTokens), String(format: "%.3f", s.usdPerMillionTokens),
                                    String(format: "%.2f", s.ttftP90Ms / 1000), String(format: "%.0f", s.tpotP99Ms), Format.figure(s.goodput)]
            let hits: [String] = namesPrefixes ? [prefixHits(s.prefixHitRate, compressed: o.budget != nil)] : []
            return sizing + hits + [o.accuracyLoss.map { Format.percent($0) } ?? "unknown"]
        }
        let shift = formats ? 1 : 0
        return Table(columns: columns, rows: rows, rightAligned: Set((4 + shift)...((namesPrefixes ? 14 : 13) + shift)))
    }

    /// The fleet section's lines: what was searched, the ranking, the recommendation, how to deploy.
    func fleetLines(_ f: FleetReport) -> (heading: String, notes: [String]) {
        let heading = "Fleet for \(Format.figure(f.targetRate)) req/s (\(f.router.rawValue) router; searched \(f.candidates.joined(separator: ", ")); at most \(f.maxGPUs) GPUs; prices: \(f.prices))"
        var notes = ["Recommendation: \(f.recommendation)"]
        if let c = f.serveCommand {
            let policy = f.recommended.map { f.options[$0].policy } ?? "full"
            notes.append(policy == "full" ? "Serve command: \(c)" : "Serve command (the engine and its settings; the policy is not in it, see where it runs): \(c)")
        }
        if let i = f.implementation { notes.append("Where the policy runs: \(i)") }
        notes += f.skipped.map { "Not planned: \($0)" }
        if f.options.count > Self.fleetRowsShown { notes.append("\(f.options.count - Self.fleetRowsShown) more options in --format json.") }
        return (heading, notes)
    }

    static let fleetRowsShown = 20

    /// Aligned terminal table.
    public var text: String {
        var out = "ckv-sim plan\n" + Table(pairs: settings).text + "\n\n"
        if let f = fleet {
            let (heading, lines) = fleetLines(f)
            out += heading + "\n" + fleetTable(f, limit: Self.fleetRowsShown).text + "\n" + lines.joined(separator: "\n") + "\n\n"
            out += "Configurations on \(gpu) × \(tensorParallel), one replica:\n"
        }
        out += configurations.text + "\n\n"
        out += "Recommendation: \(recommendation)\n\n"
        out += "Sources: [corpus] the accuracy corpus's curve (Docs/accuracy.md); [paper] published figure for this model, policy and budget; [ref. runs] real compressed runs of the reference models on the bundled traces at the nearest recorded kv-fraction; [replay] attention mass kept and relative attention-output error from replaying the traces.\n"
        out += notes.map { "- " + $0 }.joined(separator: "\n") + "\n"
        return out
    }

    /// The configurations, one row each.
    var configurations: Table { Table(columns: columns, rows: rows.map(cells)) }

    /// Markdown.
    public var markdown: String {
        var out = "# KV-cache sizing: \(model) on \(gpu), \(context)-token context\n\n"
        out += Table(columns: ["setting", "value"], rows: settings.map { [$0.0, $0.1] }).markdown + "\n\n"
        if let f = fleet {
            let (heading, lines) = fleetLines(f)
            out += "## \(heading)\n\n" + fleetTable(f, limit: Self.fleetRowsShown).markdown + "\n\n" + lines.map { "- " + $0 }.joined(separator: "\n") + "\n\n"
        }
        out += "## Configurations\(fleet == nil ? "" : " on \(gpu) × \(tensorParallel), one replica")\n\n"
        out += configurations.markdown
        out += "\n\n## Recommendation\n\n\(recommendation)\n\n## Sources and caveats\n\n"
        out += "- [corpus]: the accuracy corpus's curve (Docs/accuracy.md); [paper]: published figure for this model, policy and budget; [ref. runs]: real compressed runs of the reference models on the bundled traces; [replay]: attention mass kept and relative attention-output error from replaying the traces.\n"
        out += notes.map { "- " + $0 }.joined(separator: "\n") + "\n"
        return out
    }

    /// JSON (Docs/cli.md documents the schema).
    public func json() throws -> String {
        try JSONOutput.string(self)
    }

    /// CSV, one row per configuration.
    public var csv: String {
        let header = ["policy", "budget", "kv_fraction", "peak_bytes", "nominal_bytes", "physical_bytes", "max_concurrent", "saturated_req_s",
                      "saturated_output_tok_s", "slo_rate_req_s", "ttft_p50_ms", "ttft_p90_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_p90_ms",
                      "tpot_p99_ms", "e2e_p50_ms", "e2e_p90_ms", "e2e_p99_ms", "accuracy_loss", "accuracy_source", "replay_attention_mass",
                      "replay_output_error", "ref_runs_correct", "ref_runs", "fleet_replicas", "fleet_gpus", "fleet_usd_per_hour",
                      "fleet_usd_per_million_output_tokens", "fleet_ttft_p90_ms", "fleet_tpot_p99_ms", "fleet_goodput_req_s",
                      "corpus_accuracy", "corpus_low", "corpus_high", "corpus_samples", "prefix_hit_rate"]
        func f(_ x: Double?) -> String { x.map { String(format: "%.6g", $0) } ?? "" }
        let lines = rows.map { r -> [String] in
            let l = r.latency, t = r.accuracy.traces
            return [r.policy, r.budget.map(String.init) ?? "", f(r.kvFraction), f(r.peakBytes), f(r.nominalBytes), f(r.physicalBytes),
                    String(r.maxConcurrent), f(r.saturation.requestsPerSecond), f(r.saturation.outputTokensPerSecond), f(r.sloRate),
                    f(l?.ttft.p50), f(l?.ttft.p90), f(l?.ttft.p99), f(l?.tpot.p50), f(l?.tpot.p90), f(l?.tpot.p99),
                    f(l?.e2e.p50), f(l?.e2e.p90), f(l?.e2e.p99), f(r.accuracy.loss), r.accuracy.lossSource,
                    f(t?.attentionMass), f(t?.outputError), t.map { String($0.correct) } ?? "", t.map { String($0.runs) } ?? "",
                    r.fleet.map { String($0.replicas) } ?? "", r.fleet.map { String($0.gpus) } ?? "", f(r.fleet?.usdPerHour),
                    f(r.fleet?.usdPerMillionOutputTokens), f(r.fleet?.ttftP90Ms), f(r.fleet?.tpotP99Ms), f(r.fleet?.goodput),
                    f(r.accuracy.corpus?.accuracy), f(r.accuracy.corpus?.low), f(r.accuracy.corpus?.high), r.accuracy.corpus.map { String($0.samples) } ?? "",
                    f(l?.prefixHitRate)]
        }
        return Table(columns: header, rows: lines).csv
    }
}
