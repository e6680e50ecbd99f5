#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The times of image records and listings: RFC 3339 in UTC, to the second, such as
/// `2024-01-02T03:04:05Z`. This is the form `ISO8601DateFormatter` writes by default; that class
/// needs full Foundation, which links ICU's data, so the FoundationEssentials format style is used.
public enum ImageTimestamp {
    /// `date` as `2024-01-02T03:04:05Z`, without fractions of a second.
    public static func string(from date: Date) -> String {
        date.formatted(.iso8601)
    }

    /// Seconds since the epoch of an RFC 3339 time, with or without fractional seconds (image
    /// configurations carry nanoseconds), in UTC or with an offset; `nil` for anything else. Times
    /// before the epoch give 0.
    public static func epochSeconds(_ text: String) -> UInt32? {
        guard let date = try? Date(text, strategy: .iso8601) else { return nil }
        return UInt32(clamping: max(0, Int64(date.timeIntervalSince1970)))
    }
}
