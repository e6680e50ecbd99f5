import Foundation
@testable import ShifterImage

/// Manifests, indexes, image configurations and registry answers, as the registry client decodes
/// them: any bytes decode or are refused.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzManifest(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Data(UnsafeBufferPointer(start: data, count: size))
    if let document = try? JSONDecoder().decode(ManifestDocument.self, from: bytes) {
        _ = document.isIndex(contentType: nil)
        _ = document.unsupportedMediaTypeReason
        for descriptor in (document.manifests ?? []) + (document.layers ?? []) {
            if let platform = descriptor.platform {
                _ = ImagePlatform.linuxAMD64.accepts(ImagePlatform(os: platform.os, architecture: platform.architecture, variant: platform.variant))
            }
            _ = ImageID(descriptor.digest)
        }
    }
    if let configuration = try? JSONDecoder().decode(ImageConfigurationDocument.self, from: bytes) {
        _ = configuration.created.flatMap(ImageTimestamp.epochSeconds)
    }
    let text = String(decoding: bytes, as: UTF8.self)
    _ = AuthenticationChallenge.parse(text)
    _ = RegistryErrorBody.summary(Array(bytes))
    _ = try? ImagePlatform.parse(text)
    _ = try? SquashfsCompression.parse(text)
    return 0
}
