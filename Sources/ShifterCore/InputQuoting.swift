/// Quotes user or administrator input for a one-line error message.
///
/// Errors are printed by a setuid program and logged by slurmd, so a hostile or corrupt input must not
/// be able to add lines to a log or flood it: control characters are escaped and long input is cut.
func quoted(_ text: some StringProtocol, limit: Int = 120) -> String {
    "\"" + escaped(text, limit: limit) + "\""
}

/// The body of `quoted`, for names such as a file path that read better without quotes.
func escaped(_ text: some StringProtocol, limit: Int = 120) -> String {
    var result = ""
    var count = 0
    for scalar in text.unicodeScalars {
        if count >= limit {
            result += "..."
            break
        }
        count += 1
        switch scalar {
        case "\"": result += "\\\""
        case "\\": result += "\\\\"
        case "\n": result += "\\n"
        case "\r": result += "\\r"
        case "\t": result += "\\t"
        default:
            if scalar.value < 0x20 || scalar.value == 0x7F || (0x80..<0xA0).contains(scalar.value)
                || scalar.value == 0x2028 || scalar.value == 0x2029
            {
                result += "\\u{" + String(scalar.value, radix: 16) + "}"
            } else {
                result.unicodeScalars.append(scalar)
            }
        }
    }
    return result
}
