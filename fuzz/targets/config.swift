import ShifterCore

/// `udiRoot.conf`: any text parses or is refused with a message naming the line, and the image
/// metadata records the runtime reads from the store decode or are refused.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let text = String(decoding: bytes, as: UTF8.self)
    _ = try? SiteConfig.parse(text, source: "fuzz")
    // The required keys first, so the rest of the input reaches the other keys' parsers.
    _ = try? SiteConfig.parse("udiMount=/u\nloopMount=/l\nimagePath=/i\n" + text, source: "fuzz")
    _ = try? ImageMetadata.decode(bytes)
    return 0
}
