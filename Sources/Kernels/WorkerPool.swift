import CKernels
import Dispatch
import Foundation
import Synchronization

/// Threads that run the engine's parallel loops. A decode step runs some 200 short loops (one per
/// matrix product and attention call, tens of microseconds each); waking sleeping threads for each,
/// as `DispatchQueue.concurrentPerform` does, cost a quarter of the step. These workers spin for a
/// millisecond after each loop, waiting for the next, then sleep until woken.
///
/// `run` is for one caller at a time: a second caller (another thread, or a loop body that runs a
/// loop itself) runs its iterations on its own thread, serially.
public final class WorkerPool: Sendable {
    /// The engine's pool; it grows to the largest number of threads asked for.
    public static let shared = WorkerPool()

    /// How long a worker spins for the next loop before it sleeps.
    static let spin: UInt64 = 1_000_000 // ns

    private final class Job: Sendable {
        let iterations: Int
        /// Threads that take part: the caller and workers 0 ..< participants − 1.
        let participants: Int
        let body: @Sendable (Int) -> Void
        let next = Atomic<Int>(0)
        let finished = Atomic<Int>(0)

        init(iterations: Int, participants: Int, body: @escaping @Sendable (Int) -> Void) {
            self.iterations = iterations
            self.participants = participants
            self.body = body
        }

        /// Takes iterations until none are left.
        func work() {
            while true {
                let i = next.add(1, ordering: .relaxed).oldValue
                guard i < iterations else { return }
                body(i)
                finished.add(1, ordering: .releasing)
            }
        }
    }

    private final class Worker: Sendable {
        /// Set by the worker before it sleeps; whoever clears it owes one `wake.signal()`.
        let sleeping = Atomic<Bool>(false)
        let wake = DispatchSemaphore(value: 0)
    }

    /// Bumped for every loop; workers spin on it.
    private let epoch = Atomic<Int>(0)
    private let current = Mutex<Job?>(nil)
    private let workers = Mutex<[Worker]>([])
    private let busy = Atomic<Bool>(false)

    init() {}

    /// Calls `body(i)` for every i in 0 ..< `iterations` on up to `threads` threads (this one and
    /// `threads` − 1 workers), and returns when all have finished. Iterations are handed out one
    /// at a time, in order; the writes of every iteration are visible when `run` returns.
    public func run(iterations: Int, threads: Int, _ body: @escaping @Sendable (Int) -> Void) {
        let participants = min(threads, iterations)
        guard participants > 1, busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
            for i in 0..<iterations { body(i) }
            return
        }
        defer { busy.store(false, ordering: .releasing) }
        let team = ensureWorkers(participants - 1)
        let job = Job(iterations: iterations, participants: participants, body: body)
        current.withLock { $0 = job }
        epoch.add(1, ordering: .sequentiallyConsistent)
        for w in team.prefix(participants - 1) where w.sleeping.exchange(false, ordering: .sequentiallyConsistent) {
            w.wake.signal()
        }
        job.work()
        while job.finished.load(ordering: .acquiring) < iterations { ckv_pause() }
        current.withLock { $0 = nil }
    }

    /// The workers, at least `count` of them.
    private func ensureWorkers(_ count: Int) -> [Worker] {
        workers.withLock { list in
            while list.count < count {
                let worker = Worker(), index = list.count
                list.append(worker)
                let thread = Thread { [self] in loop(worker, index: index) }
                thread.name = "ckv-sim worker \(index)"
                thread.start()
            }
            return list
        }
    }

    private func loop(_ me: Worker, index: Int) {
        var seen = epoch.load(ordering: .acquiring)
        while true {
            var spins = 0
            var deadline = DispatchTime.now().uptimeNanoseconds + Self.spin
            while epoch.load(ordering: .acquiring) == seen {
                spins += 1
                ckv_pause()
                guard spins % 256 == 0, DispatchTime.now().uptimeNanoseconds > deadline else { continue }
                // Sleep. A caller that bumps the epoch after our check below sees `sleeping` set.
                me.sleeping.store(true, ordering: .sequentiallyConsistent)
                if epoch.load(ordering: .sequentiallyConsistent) == seen {
                    me.wake.wait()
                } else if !me.sleeping.exchange(false, ordering: .sequentiallyConsistent) {
                    me.wake.wait() // a caller cleared the flag: take its signal
                }
                deadline = DispatchTime.now().uptimeNanoseconds + Self.spin
            }
            seen = epoch.load(ordering: .acquiring)
            guard let job = current.withLock({ $0 }), index < job.participants - 1 else { continue }
            job.work()
        }
    }
}

/// Splits 0 ..< `count` into one contiguous range per worker (at most `threads`, at least
/// `minimum` items each) and runs `body` on each range on the shared pool.
func forRanges(of count: Int, threads: Int, minimum: Int, _ body: @escaping @Sendable (Range<Int>) -> Void) {
    let workers = max(1, min(threads, count / minimum))
    let chunk = (count + workers - 1) / workers
    WorkerPool.shared.run(iterations: workers, threads: workers) { w in
        let range = (w * chunk)..<min(count, (w + 1) * chunk)
        if !range.isEmpty { body(range) }
    }
}
