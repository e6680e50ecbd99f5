import ShifterCore

/// Image references (`--image`, `shifterimg pull REF`): any text parses or is refused with a
/// message, and a parsed reference survives its canonical form.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzReference(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    for type in [ImageType.docker, .id, .custom, .local] {
        guard let reference = try? ImageReference.parse(text, defaultType: type) else { continue }
        guard let again = try? ImageReference.parse(reference.canonical, defaultType: type), again == reference else {
            fatalError("reference \(text.debugDescription) does not survive its canonical form \(reference.canonical.debugDescription)")
        }
    }
    return 0
}
