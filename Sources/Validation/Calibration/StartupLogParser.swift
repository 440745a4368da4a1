import Foundation
import Hardware

/// Reads a vLLM start-up log (0.4–0.11, V0 and V1; the line formats and when each appeared are in
/// Docs/calibration.md). Lines may carry process prefixes (`(EngineCore_0 pid=…)`,
/// `(RayWorkerWrapper pid=…, ip=…)`), ANSI colours and Ray's "[repeated Nx across cluster]";
/// lines a terminal hard-wrapped are joined back. The first occurrence of each figure wins
/// (tensor-parallel workers print the same line once each).
enum StartupLogParser {
    static func parse(_ text: String, file: String) throws -> StartupLog {
        let lines = logicalLines(text)
        guard lines.contains(where: { $0.message != nil }) else {
            throw CalibrationError("\(file): not a vLLM benchmark JSON, GuideLLM report or vLLM start-up log (no `INFO MM-DD HH:MM:SS file.py:N]` log lines)")
        }
        var log = StartupLog(file: file, engine: .vllmV0, version: nil, model: nil, settings: ServingSettings(), pipelineParallel: 1,
                             kvGiB: nil, kvTokens: nil, gpuBlocks: nil, totalGiB: nil, weightsGiB: nil, lines: [:])
        var engineMarker: String?, apiServer = false, config: String?, args: [String: String] = [:]
        var v1Blocks: Int?
        var lineOf: [String: Int] = [:]
        func first<T>(_ key: String, _ line: Int, _ current: inout T?, _ value: T?) {
            guard current == nil, let value else { return }
            current = value
            lineOf[key] = line
        }
        for (number, message) in lines.compactMap({ l in l.message.map { (l.number, $0) } }) {
            if let m = match(#"^Initializing an? (?:(V[01]) )?LLM engine(?: \(v([^)]+)\))? with config: (.*)$"#, message) {
                first("engine", number, &engineMarker, m[0] ?? "")
                first("version", number, &log.version, m[1])
                first("config", number, &config, m[2])
            } else if let m = match(#"^vLLM API server version (\S+)"#, message) {
                apiServer = true
                first("version", number, &log.version, m[0])
            } else if let m = match(#"^non-default args: \{(.*)\}$"#, message), let body = m[0] {
                for (k, v) in pairs(body, #"'(\w+)': ('[^']*'|[^,}]+)"#) where args[k] == nil { args[k] = v }
            } else if let m = match(#"^args: Namespace\((.*)\)$"#, message), let body = m[0] {
                for (k, v) in pairs(body, #"(\w+)=('[^']*'|[^,)]+)"#) where args[k] == nil { args[k] = v }
            } else if let m = match(#"Chunked prefill is enabled with max_num_batched_tokens=(\d+)"#, message) {
                if args["max_num_batched_tokens"] == nil { args["max_num_batched_tokens"] = m[0] }
            } else if let m = match(#"^Available KV cache memory: (-?[\d.]+) GiB"#, message) {
                first("kv_gib", number, &log.kvGiB, m[0].flatMap(Double.init))
                if engineMarker == nil { engineMarker = "V1" }
            } else if let m = match(#"^GPU KV cache size: ([\d,]+) tokens"#, message) {
                first("kv_tokens", number, &log.kvTokens, m[0].flatMap { Int($0.replacingOccurrences(of: ",", with: "")) })
                if engineMarker == nil { engineMarker = "V1" }
            } else if let m = match(#"^# (\w+) blocks: (\d+), # CPU blocks: \d+"#, message) {
                first("gpu_blocks", number, &log.gpuBlocks, m[1].flatMap { Int($0) })
            } else if let m = match(#"num_gpu_blocks is: (\d+)"#, message) {
                v1Blocks = v1Blocks ?? m[0].flatMap { Int($0) }
            } else if let m = match(#"total_gpu_memory \(([\d.]+)GiB\) x gpu_memory_utilization \(([\d.]+)\)"#, message) {
                first("total_gpu_memory", number, &log.totalGiB, m[0].flatMap(Double.init))
                if args["gpu_memory_utilization"] == nil { args["gpu_memory_utilization"] = m[1] }
            } else if let m = match(#"the rest of the memory reserved for KV Cache is (-?[\d.]+)GiB"#, message) {
                first("kv_gib", number, &log.kvGiB, m[0].flatMap(Double.init))
            } else if let m = match(#"^Memory profiling results: .*total_gpu_memory=([\d.]+)GiB.* kv_cache_size=(-?[\d.]+)GiB.* gpu_memory_utilization=([\d.]+)"#, message) {
                first("total_gpu_memory", number, &log.totalGiB, m[0].flatMap(Double.init))
                first("kv_gib", number, &log.kvGiB, m[1].flatMap(Double.init))
                if args["gpu_memory_utilization"] == nil { args["gpu_memory_utilization"] = m[2] }
            } else if let m = match(#"^(?:Loading model weights took|Model loading took) ([\d.]+) (?:GB|GiB)"#, message) {
                first("weights", number, &log.weightsGiB, m[0].flatMap(Double.init))
            }
        }
        guard let marker = engineMarker else {
            throw CalibrationError("\(file): no engine line (\"Initializing a V1 LLM engine (v…) with config: …\"): is this a vLLM start-up log?")
        }
        // Before 0.7.1 both engines said "an LLM engine"; V1 was opt-in and printed its own lines (marked above).
        log.engine = marker == "V1" ? .vllmV1 : .vllmV0
        if log.gpuBlocks == nil, log.kvTokens == nil, let v1Blocks { log.gpuBlocks = v1Blocks }
        guard log.kvGiB != nil || log.kvTokens != nil || log.gpuBlocks != nil else {
            throw CalibrationError("\(file): no KV cache figure (Available KV cache memory, GPU KV cache size, # GPU blocks …): the log ends before the cache was sized")
        }
        let cfg = config ?? ""
        func setting(_ arg: String, _ field: String? = nil) -> String? {
            if let v = args[arg] { return v }
            guard let field, let m = match("(?:^|, )\(field)=('[^']*'|[^,]+)", cfg) else { return nil }
            return m[0]
        }
        func unquoted(_ s: String) -> String { s.trimmingCharacters(in: CharacterSet(charactersIn: "'\" ")) }
        func number<T: LosslessStringConvertible>(_ key: String, _ raw: String?) throws -> T? {
            guard let raw, unquoted(raw) != "None" else { return nil }
            guard let v = T(unquoted(raw)) else { throw CalibrationError("\(file): \(key)=\(raw): expected a number") }
            return v
        }
        if let model = setting("model", "model") { log.model = (unquoted(model) as NSString).lastPathComponent }
        var s = ServingSettings()
        s.engine = log.engine
        if let v = log.version.flatMap({ EngineVersion($0) }), log.engine.runs(v) { s.engineVersion = v }
        s.entrypoint = apiServer ? .server : .offline
        s.gpuMemoryUtilization = try number("gpu_memory_utilization", args["gpu_memory_utilization"])
        s.maxModelLen = try number("max_model_len", args["max_model_len"]) ?? (try number("max_seq_len", setting("max_seq_len", "max_seq_len")))
        s.maxNumSeqs = try number("max_num_seqs", args["max_num_seqs"])
        s.maxNumBatchedTokens = try number("max_num_batched_tokens", args["max_num_batched_tokens"])
        s.blockSize = try number("block_size", args["block_size"])
        s.tensorParallel = try number("tensor_parallel_size", setting("tensor_parallel_size", "tensor_parallel_size"))
        log.pipelineParallel = try number("pipeline_parallel_size", setting("pipeline_parallel_size", "pipeline_parallel_size")) ?? 1
        if let eager = setting("enforce_eager", "enforce_eager").map(unquoted), eager == "True" { s.cudaGraphs = false }
        if let chunked = (args["enable_chunked_prefill"] ?? match(#"(?:chunked_prefill_enabled|enable_chunked_prefill)=(True|False)"#, cfg)?[0]).map(unquoted),
           chunked != "None" {
            s.chunkedPrefill = chunked == "True"
        }
        if let kv = setting("kv_cache_dtype", "kv_cache_dtype").map(unquoted), kv != "auto" {
            guard kv.hasPrefix("fp8") else { throw CalibrationError("\(file): kv_cache_dtype=\(kv): not a KV format ckv-sim models (auto, fp8)") }
            s.kvFormat = .fp8
        }
        if let q = setting("quantization", "quantization").map(unquoted), q != "None" {
            switch q {
            case "fp8": s.weightFormat = .fp8
            case "awq", "gptq", "awq_marlin", "gptq_marlin": s.weightFormat = .int4
            default: throw CalibrationError("\(file): quantization=\(q): not a weight format ckv-sim models (none, fp8, awq/gptq 4-bit)")
            }
        }
        log.settings = s
        log.lines = lineOf
        return log
    }

    /// A log line with its 1-based number and, when it is a vLLM log record, its message.
    struct Line {
        var number: Int
        var text: String
        var message: String?
    }

    /// The lines with colours and Ray's repeat notes removed, hard-wrapped lines joined back.
    static func logicalLines(_ text: String) -> [Line] {
        var out: [Line] = []
        for (i, raw) in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }).enumerated() {
            var line = String(raw)
            line = line.replacingOccurrences(of: #"\x1B?\[[0-9;]*m"#, with: "", options: .regularExpression)
            line = line.replacingOccurrences(of: #"\s*\[repeated \d+x across cluster\]"#, with: "", options: .regularExpression)
            if !isRecordStart(line), let last = out.last, last.text.count >= 100, !line.isEmpty {
                out[out.count - 1].text += line
                continue
            }
            out.append(Line(number: i + 1, text: line, message: nil))
        }
        for i in out.indices { out[i].message = message(out[i].text) }
        return out
    }

    static let record = #"^(?:\([^)]*\)\s*)?(?:DEBUG|INFO|WARNING|ERROR|CRITICAL)\s+\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?\s+\[?[\w./-]+\.py:\d+\]\s?(.*)$"#

    static func isRecordStart(_ line: String) -> Bool {
        line.range(of: #"^(?:\([^)]*\)\s*)?(?:DEBUG|INFO|WARNING|ERROR|CRITICAL)\s+\d\d-\d\d "#, options: .regularExpression) != nil
            || line.hasPrefix("(") || line.isEmpty
    }

    static func message(_ line: String) -> String? {
        match(record, line)?[0] ?? nil
    }

    /// The capture groups of `pattern`'s first match in `text` (nil for a group that did not take part).
    static func match(_ pattern: String, _ text: String) -> [String?]? {
        guard let re = try? NSRegularExpression(pattern: pattern),
              let m = re.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) else { return nil }
        return (1..<max(m.numberOfRanges, 1)).map { g in Range(m.range(at: g), in: text).map { String(text[$0]) } }
    }

    /// Every (key, value) `pattern` captures in `text`.
    static func pairs(_ text: String, _ pattern: String) -> [(String, String)] {
        guard let re = try? NSRegularExpression(pattern: pattern) else { return [] }
        return re.matches(in: text, range: NSRange(text.startIndex..., in: text)).compactMap { m in
            guard let k = Range(m.range(at: 1), in: text), let v = Range(m.range(at: 2), in: text) else { return nil }
            return (String(text[k]), String(text[v]))
        }
    }
}
