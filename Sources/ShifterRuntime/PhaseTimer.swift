import ShifterSystem

/// Seconds spent in each named phase of a piece of work, on the monotonic clock.
public struct PhaseTimer: Sendable {
    /// The phases measured so far and their seconds.
    public private(set) var seconds: [String: Double] = [:]
    private let start: Double

    public init() { start = MonotonicClock.seconds }

    /// Seconds since the timer was made.
    public var elapsed: Double { MonotonicClock.seconds - start }

    /// Runs `body`, adding its time to `phase` whether it returns or throws.
    public mutating func measure<T, E: Error>(_ phase: String, _ body: () throws(E) -> T) throws(E) -> T {
        let began = MonotonicClock.seconds
        defer { seconds[phase, default: 0] += MonotonicClock.seconds - began }
        return try body()
    }
}
