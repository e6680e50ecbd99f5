/// Seconds spent in each named phase of a piece of work, on the monotonic clock.
public struct PhaseTimer: Sendable {
    /// The phases measured so far and their seconds.
    public private(set) var seconds: [String: Double] = [:]
    private let clock = ContinuousClock()
    private let start: ContinuousClock.Instant

    public init() { start = clock.now }

    /// Seconds since the timer was made.
    public var elapsed: Double { Self.seconds(clock.now - start) }

    /// Runs `body`, adding its time to `phase` whether it returns or throws.
    public mutating func measure<T, E: Error>(_ phase: String, _ body: () throws(E) -> T) throws(E) -> T {
        let began = clock.now
        defer { seconds[phase, default: 0] += Self.seconds(clock.now - began) }
        return try body()
    }

    static func seconds(_ duration: Duration) -> Double {
        let parts = duration.components
        return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
    }
}
