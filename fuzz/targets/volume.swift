import ShifterCore

/// Volume specifications (`--volume`, `siteFs`) and the other small option parsers of the setuid
/// command: any text parses or is refused, and a parsed volume survives its canonical form.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzVolume(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    if let volumes = try? VolumeSpec.parseList(text) {
        for volume in volumes {
            guard let again = try? VolumeSpec.parse(volume.canonical), again == volume else {
                fatalError("volume \(text.debugDescription) does not survive its canonical form \(volume.canonical.debugDescription)")
            }
        }
    }
    _ = try? SiteMount.parseList(text)
    _ = try? ModuleRequest.parse(text)
    _ = try? EnvironmentAssignment.parse(text)
    _ = try? EnvironmentFile.parse(text, source: "fuzz")
    _ = try? ByteSize.parse(text)
    // The command line of `shifter`, split at NUL bytes, with and without its variables.
    let arguments = text.split(separator: "\0", omittingEmptySubsequences: false).map(String.init)
    _ = try? ShifterOptions.parse(arguments: arguments, environment: [:])
    _ = try? ShifterOptions.parse(arguments: [], environment: ["SHIFTER_IMAGE": text, "SHIFTER_VOLUME": text, "SHIFTER_MODULE": text])
    return 0
}
