/// Number formats a GPU computes in (dense tensor-core throughput is quoted per format).
public enum ComputeFormat: String, CaseIterable, Codable, Sendable {
    case bf16, fp16, fp8, int8
}

/// How GPUs of one node talk to each other.
public struct Interconnect: Codable, Equatable, Sendable {
    /// e.g. "NVLink 4", "PCIe Gen4 x16", "Infinity Fabric".
    public var kind: String
    /// Per-GPU bandwidth in GB/s (10⁹ B/s), one direction, as the vendor quotes it.
    public var gbPerSecond: Double

    public init(kind: String, gbPerSecond: Double) {
        self.kind = kind
        self.gbPerSecond = gbPerSecond
    }
}

/// One accelerator model, with the figures the cost model and memory math use.
///
/// Throughputs are **dense** (no structured sparsity), per GPU, at boost clock, from the vendor
/// datasheet named in `source`. Memory is the nominal capacity; `cudaVisibleGiB` is what
/// `torch.cuda.mem_get_info` reports as total (the capacity minus what the driver and ECC
/// reserve), the figure vLLM multiplies by `gpu_memory_utilization`.
public struct GPU: Codable, Equatable, Sendable {
    public var name: String
    public var vendor: String
    /// Nominal memory as marketed, "GB" (binary-sized HBM stacks; GDDR boards in 10⁹ bytes).
    public var memoryGB: Double
    /// Total memory the CUDA/ROCm runtime reports, GiB.
    public var cudaVisibleGiB: Double
    /// Where `cudaVisibleGiB` comes from: an observed runtime report, or an estimate.
    public var cudaVisibleSource: String
    /// Peak memory bandwidth, GB/s.
    public var bandwidthGBps: Double
    /// Dense TFLOP/s (TOPS for int8) per format; a format the GPU lacks is absent.
    public var denseTFLOPS: [ComputeFormat: Double]
    public var interconnect: Interconnect
    /// The network between nodes, per GPU (one direction), in the reference system or instance
    /// `source` names; nil when the catalogue has no figure.
    public var network: Interconnect?
    /// Datasheet or page the figures come from.
    public var source: String

    public init(name: String, vendor: String, memoryGB: Double, cudaVisibleGiB: Double, cudaVisibleSource: String, bandwidthGBps: Double,
                denseTFLOPS: [ComputeFormat: Double], interconnect: Interconnect, network: Interconnect? = nil, source: String) {
        self.name = name
        self.vendor = vendor
        self.memoryGB = memoryGB
        self.cudaVisibleGiB = cudaVisibleGiB
        self.cudaVisibleSource = cudaVisibleSource
        self.bandwidthGBps = bandwidthGBps
        self.denseTFLOPS = denseTFLOPS
        self.interconnect = interconnect
        self.network = network
        self.source = source
    }

    /// Bytes the runtime reports as total.
    public var visibleBytes: Double { cudaVisibleGiB * 1_073_741_824 }

    /// Dense throughput in FLOP/s for `format`, falling back to the next wider format the GPU
    /// has (fp8 on a GPU without fp8 runs at its bf16 rate: weights are upcast).
    public func flops(_ format: ComputeFormat) -> Double {
        let order: [ComputeFormat] = {
            switch format {
            case .fp8: [.fp8, .bf16, .fp16]
            case .int8: [.int8, .bf16, .fp16]
            case .bf16: [.bf16, .fp16]
            case .fp16: [.fp16, .bf16]
            }
        }()
        for f in order { if let t = denseTFLOPS[f] { return t * 1e12 } }
        return 0
    }
}

/// The GPUs ckv-sim knows. Names are matched case-insensitively.
public enum GPUCatalog {
    /// A CUDA total not observed in a runtime report is estimated as the nominal HBM capacity
    /// (HBM stacks come in binary units) less 1.12 %, the mean gap of the four HBM parts observed
    /// below (A100-80G 80 → 79.15 GiB, −1.06 %; A100-40G 40 → 39.39, −1.53 %; H100 80 → 79.18,
    /// −1.03 %; H200 141 → 139.80, −0.85 %).
    static func estimatedVisible(nominalGiB: Double) -> Double { (nominalGiB * (1 - 0.0112) * 100).rounded() / 100 }

    public static let all: [GPU] = [
        GPU(name: "A100-40G", vendor: "NVIDIA", memoryGB: 40, cudaVisibleGiB: 39.39,
            cudaVisibleSource: "observed: PyTorch OOM reports 'GPU 0; 39.39 GiB total capacity' on A100-SXM4-40GB",
            bandwidthGBps: 1555, denseTFLOPS: [.bf16: 312, .fp16: 312, .int8: 624],
            interconnect: Interconnect(kind: "NVLink 3", gbPerSecond: 300),
            network: Interconnect(kind: "InfiniBand HDR (ConnectX-6)", gbPerSecond: 25),
            source: "NVIDIA A100 Tensor Core GPU datasheet (2021), SXM4 40GB column; network: NVIDIA DGX A100 (8 single-port ConnectX-6 VPI 200 Gb/s HDR InfiniBand, one per GPU)"),
        GPU(name: "A100-80G", vendor: "NVIDIA", memoryGB: 80, cudaVisibleGiB: 79.15,
            cudaVisibleSource: "observed: PyTorch OOM reports 'GPU 0; 79.15 GiB total capacity' on A100-SXM4-80GB",
            bandwidthGBps: 2039, denseTFLOPS: [.bf16: 312, .fp16: 312, .int8: 624],
            interconnect: Interconnect(kind: "NVLink 3", gbPerSecond: 300),
            network: Interconnect(kind: "InfiniBand HDR (ConnectX-6)", gbPerSecond: 25),
            source: "NVIDIA A100 Tensor Core GPU datasheet (2021), SXM4 80GB column; network: NVIDIA DGX A100 (8 single-port ConnectX-6 VPI 200 Gb/s HDR InfiniBand, one per GPU)"),
        GPU(name: "H100-80G-SXM", vendor: "NVIDIA", memoryGB: 80, cudaVisibleGiB: 79.18,
            cudaVisibleSource: "observed: vLLM 0.11 logs 'Free memory on device: 78.57/79.18 GiB' on an H100 80GB (llm-d/llm-d-benchmark, config_explorer/empirical-vllm-memory-results.md)",
            bandwidthGBps: 3350, denseTFLOPS: [.bf16: 989.4, .fp16: 989.4, .fp8: 1978.9, .int8: 1978.9],
            interconnect: Interconnect(kind: "NVLink 4", gbPerSecond: 450),
            network: Interconnect(kind: "InfiniBand NDR (ConnectX-7)", gbPerSecond: 50),
            source: "NVIDIA H100 Tensor Core GPU datasheet (2023), H100 SXM column (sparsity figures halved); network: NVIDIA DGX BasePOD reference architecture, core components (8 single-port ConnectX-7 VPI, up to 400 Gb/s, one per GPU)"),
        GPU(name: "H100-80G-PCIe", vendor: "NVIDIA", memoryGB: 80, cudaVisibleGiB: 79.18,
            cudaVisibleSource: "as the H100 SXM (the same 80 GB HBM; observed there)",
            bandwidthGBps: 2000, denseTFLOPS: [.bf16: 756, .fp16: 756, .fp8: 1513, .int8: 1513],
            interconnect: Interconnect(kind: "NVLink bridge", gbPerSecond: 300),
            source: "NVIDIA H100 Tensor Core GPU datasheet (2023), H100 PCIe column (sparsity figures halved)"),
        GPU(name: "H200", vendor: "NVIDIA", memoryGB: 141, cudaVisibleGiB: 139.80,
            cudaVisibleSource: "observed: vLLM 0.6.4 logs 'total_gpu_memory=139.80GiB' on an H200 (suesie/grpocredit, experiment_report_0427.md)",
            bandwidthGBps: 4800, denseTFLOPS: [.bf16: 989.4, .fp16: 989.4, .fp8: 1978.9, .int8: 1978.9],
            interconnect: Interconnect(kind: "NVLink 4", gbPerSecond: 450),
            network: Interconnect(kind: "InfiniBand NDR (ConnectX-7)", gbPerSecond: 50),
            source: "NVIDIA H200 Tensor Core GPU datasheet (2024), H200 SXM column (sparsity figures halved); network: NVIDIA DGX BasePOD reference architecture, core components (8 single-port ConnectX-7 VPI, up to 400 Gb/s, one per GPU)"),
        GPU(name: "L4", vendor: "NVIDIA", memoryGB: 24, cudaVisibleGiB: 22.03,
            cudaVisibleSource: "observed: PyTorch OOM reports 'a total capacity of 22.03 GiB' on an L4",
            bandwidthGBps: 300, denseTFLOPS: [.bf16: 121, .fp16: 121, .fp8: 242.5, .int8: 242.5],
            interconnect: Interconnect(kind: "PCIe Gen4 x16", gbPerSecond: 32),
            network: Interconnect(kind: "Ethernet (AWS g6.48xlarge)", gbPerSecond: 1.5625),
            source: "NVIDIA L4 Tensor Core GPU datasheet (2023) (sparsity figures halved); network: AWS g6.48xlarge, 100 Gbps for 8 L4 (aws/karpenter-provider-aws zz_generated.bandwidth.go, from the EC2 network-performance table)"),
        GPU(name: "L40S", vendor: "NVIDIA", memoryGB: 48, cudaVisibleGiB: 44.40,
            cudaVisibleSource: "observed on the L40 (same 48 GB GDDR6 board): 'a total capacity of 44.40 GiB'",
            bandwidthGBps: 864, denseTFLOPS: [.bf16: 362.05, .fp16: 362.05, .fp8: 733, .int8: 733],
            interconnect: Interconnect(kind: "PCIe Gen4 x16", gbPerSecond: 32),
            network: Interconnect(kind: "Ethernet (AWS g6e.48xlarge)", gbPerSecond: 6.25),
            source: "NVIDIA L40S datasheet (2023) (sparsity figures halved); network: AWS g6e.48xlarge, 400 Gbps for 8 L40S (aws/karpenter-provider-aws zz_generated.bandwidth.go, from the EC2 network-performance table)"),
        GPU(name: "A10G", vendor: "NVIDIA", memoryGB: 24, cudaVisibleGiB: 22.02,
            cudaVisibleSource: "observed: PyTorch OOM reports 'GPU 0; 22.02 GiB total capacity' on AWS g5 (A10G)",
            bandwidthGBps: 600, denseTFLOPS: [.bf16: 70, .fp16: 70, .int8: 140],
            interconnect: Interconnect(kind: "PCIe Gen4 x16", gbPerSecond: 32),
            source: "AWS EC2 G5 instance page (A10G 24 GB, 600 GB/s); tensor rate from NVIDIA's A10G figure of 70 TFLOPS dense fp16 (the A10's 125 at a lower clock/power)"),
        GPU(name: "T4", vendor: "NVIDIA", memoryGB: 16, cudaVisibleGiB: 14.56,
            cudaVisibleSource: "observed: vLLM 0.6.6 logs 'total_gpu_memory (14.56GiB)' on a Colab Tesla T4 (TickerTaka/TickerTaka-backend, reports/vllm-colab-t4-e2e-2026-06-24/04-verify.txt)",
            bandwidthGBps: 320, denseTFLOPS: [.fp16: 65, .int8: 130],
            interconnect: Interconnect(kind: "PCIe Gen3 x16", gbPerSecond: 16),
            source: "NVIDIA T4 Tensor Core GPU datasheet (2019): 65 TFLOPS mixed-precision fp16, 130 TOPS int8, 320 GB/s"),
        GPU(name: "RTX-3090", vendor: "NVIDIA", memoryGB: 24, cudaVisibleGiB: 23.57,
            cudaVisibleSource: "observed: vLLM 0.6.6 logs 'total_gpu_memory (23.57GiB)' on a GeForce RTX 3090",
            bandwidthGBps: 936, denseTFLOPS: [.bf16: 71, .fp16: 71, .int8: 284],
            interconnect: Interconnect(kind: "PCIe Gen4 x16", gbPerSecond: 32),
            source: "NVIDIA Ampere GA102 GPU architecture whitepaper (2020), GeForce RTX 3090: 71 TFLOPS fp16/bf16 tensor with fp32 accumulate, 284 TOPS int8 dense, 936 GB/s"),
        GPU(name: "RTX-4090", vendor: "NVIDIA", memoryGB: 24, cudaVisibleGiB: 23.99,
            cudaVisibleSource: "observed: torch.cuda.get_device_properties reports total_memory 24563 MiB on a GeForce RTX 4090 in a public log (nvidia-smi: 24564MiB)",
            bandwidthGBps: 1008, denseTFLOPS: [.bf16: 165.2, .fp16: 165.2, .fp8: 330.3, .int8: 660.6],
            interconnect: Interconnect(kind: "PCIe Gen4 x16", gbPerSecond: 32),
            source: "NVIDIA Ada GPU architecture whitepaper (2022), GeForce RTX 4090: 165.2 TFLOPS fp16/bf16 tensor with fp32 accumulate (GeForce half rate), 330.3 fp8, 1008 GB/s"),
        GPU(name: "RTX-A6000", vendor: "NVIDIA", memoryGB: 48, cudaVisibleGiB: 47.54,
            cudaVisibleSource: "observed: torch.cuda.get_device_properties reports total_memory 48676 MiB on an RTX A6000 in a public log (nvidia-smi: 49140MiB, ECC off)",
            bandwidthGBps: 768, denseTFLOPS: [.bf16: 154.8, .fp16: 154.8, .int8: 309.7],
            interconnect: Interconnect(kind: "PCIe Gen4 x16", gbPerSecond: 32),
            source: "NVIDIA RTX A6000 datasheet (2021): 48 GB GDDR6, 768 GB/s, 309.7 TFLOPS tensor with sparsity (154.8 dense, full rate with fp32 accumulate)"),
        GPU(name: "L40", vendor: "NVIDIA", memoryGB: 48, cudaVisibleGiB: 44.40,
            cudaVisibleSource: "observed: PyTorch OOM reports 'a total capacity of 44.40 GiB' on an L40 (ECC on; nvidia-smi: 46068MiB)",
            bandwidthGBps: 864, denseTFLOPS: [.bf16: 181.05, .fp16: 181.05, .fp8: 362, .int8: 362],
            interconnect: Interconnect(kind: "PCIe Gen4 x16", gbPerSecond: 32),
            source: "NVIDIA L40 datasheet (2022): 48 GB GDDR6 ECC, 864 GB/s, 362.1 TFLOPS fp16/bf16 tensor with sparsity (181.05 dense), 724 fp8 with sparsity"),
        GPU(name: "B200", vendor: "NVIDIA", memoryGB: 180, cudaVisibleGiB: estimatedVisible(nominalGiB: 180),
            cudaVisibleSource: "estimated: nominal 180 GiB less 1.12 %",
            bandwidthGBps: 7700, denseTFLOPS: [.bf16: 2250, .fp16: 2250, .fp8: 4500, .int8: 4500],
            interconnect: Interconnect(kind: "NVLink 5", gbPerSecond: 900),
            network: Interconnect(kind: "InfiniBand NDR (ConnectX-7)", gbPerSecond: 50),
            source: "NVIDIA DGX B200 datasheet (2024): 8 GPUs, 1,440 GB, 62 TB/s HBM3e (7.7 TB/s per GPU), 72 PFLOPS fp8 sparse; network: NVIDIA DGX BasePOD reference architecture, core components (8 single-port ConnectX-7 VPI, up to 400 Gb/s, one per GPU)"),
        GPU(name: "MI300X", vendor: "AMD", memoryGB: 192, cudaVisibleGiB: estimatedVisible(nominalGiB: 192),
            cudaVisibleSource: "estimated: nominal 192 GiB less 1.12 %",
            bandwidthGBps: 5300, denseTFLOPS: [.bf16: 1307.4, .fp16: 1307.4, .fp8: 2614.9, .int8: 2614.9],
            interconnect: Interconnect(kind: "Infinity Fabric", gbPerSecond: 448),
            source: "AMD Instinct MI300X data sheet (2023) (sparsity figures halved)"),
    ]

    /// The GPU called `name` (case-insensitive; "-" and "_" and spaces are interchangeable;
    /// "H100" alone means the SXM part, "H100-80G" likewise).
    public static func named(_ name: String) -> GPU? {
        let key = normalise(name)
        if let g = all.first(where: { normalise($0.name) == key }) { return g }
        let aliases = ["h100": "H100-80G-SXM", "h10080g": "H100-80G-SXM", "h100sxm": "H100-80G-SXM", "h100pcie": "H100-80G-PCIe",
                       "a100": "A100-80G", "a10080gb": "A100-80G", "a10040gb": "A100-40G", "h200sxm": "H200", "mi300": "MI300X",
                       "3090": "RTX-3090", "geforcertx3090": "RTX-3090", "teslat4": "T4"]
        return aliases[key].flatMap { a in all.first { $0.name == a } }
    }

    static func normalise(_ s: String) -> String {
        s.lowercased().filter { $0.isLetter || $0.isNumber }
    }
}
