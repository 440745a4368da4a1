// The simulation's events and their queue. Time is integer microseconds.

/// An event: `(time, priority, seq)` orders the queue; arrivals before step ends at the same
/// instant, then creation order.
struct Event: Comparable {
    enum Kind {
        case arrival(Request)
        /// A prefilled request handed over by a prefill replica (disaggregated serving).
        case handoff(Handoff)
        /// A decode replica's sequence whose KV has arrived.
        case kvLoaded
        case stepEnd

        var priority: Int {
            switch self {
            case .arrival, .handoff: 0
            case .kvLoaded: 1
            case .stepEnd: 2
            }
        }
    }

    var time: Int64
    var seq: UInt64
    var kind: Kind

    static func < (a: Event, b: Event) -> Bool {
        (a.time, a.kind.priority, a.seq) < (b.time, b.kind.priority, b.seq)
    }

    static func == (a: Event, b: Event) -> Bool { a.time == b.time && a.seq == b.seq }
}

import HeapModule

/// Pending events, earliest first; ties in creation order.
struct EventQueue {
    private var heap = Heap<Event>()
    private var counter: UInt64 = 0

    mutating func push(_ time: Int64, _ kind: Event.Kind) {
        counter += 1
        heap.insert(Event(time: time, seq: counter, kind: kind))
    }

    mutating func pop() -> Event? { heap.popMin() }

    /// When the earliest pending event happens (nil: none).
    var nextTime: Int64? { heap.min?.time }
}
