import Hardware

extension Simulation {
    /// Plans memory, checks that the largest request can be served, and runs the simulation.
    /// - Parameter timeSeries: keep the batch and KV series (off for callers that need only the figures).
    /// - Parameter largest: (prompt, output) of the largest request the workload can produce,
    ///   when known up front (synthetic workloads); a log's overlong requests are rejected one by one.
    /// - Throws: `CapacityError` when the model or a request cannot fit.
    public static func run(gpu: GPU, model: ModelSpec, serving: ServingConfig, compression: CompressionSpec? = nil,
                           constants: CostConstants = CostConstants(), source: any RequestSource,
                           largest: (prompt: Int, output: Int)? = nil, timeSeries: Bool = true) throws -> SimulationResult {
        let plan = try MemoryPlan(gpu: gpu, model: model, serving: serving)
        var sim = Simulation(plan: plan, cost: CostModel(gpu: gpu, model: model, serving: serving, constants: constants),
                             compression: compression,
                             scheduler: scheduler(for: serving),
                             source: source)
        sim.recordsTimeSeries = timeSeries
        if let largest { try sim.checkFits(prompt: largest.prompt, output: largest.output) }
        return sim.run()
    }
}
