import Testing
@testable import ShifterImage

/// A manifest whose own media type says it is not an image is refused, not read by its fields.
struct ManifestMediaTypeTests {
    private func document(_ mediaType: String?) -> ManifestDocument {
        ManifestDocument(schemaVersion: 2, mediaType: mediaType, manifests: nil, config: nil, layers: [], fsLayers: nil)
    }

    @Test(arguments: [nil] + MediaType.manifestAccept)
    func acceptsIndexesManifestsAndDocumentsWithoutAType(mediaType: String?) {
        #expect(document(mediaType).unsupportedMediaTypeReason == nil)
    }

    @Test(arguments: [
        ("application/vnd.oci.image.config.v1+json", "has media type \"application/vnd.oci.image.config.v1+json\", which is not an image manifest or index"),
        ("text/html", "has media type \"text/html\""),
        ("application/vnd.oci.artifact.manifest.v1+json", "not an image manifest or index"),
        (MediaType.dockerSchema1Signed, "schema 1 manifest"),
        (MediaType.dockerSchema1, "schema 1 manifest"),
        ("text/html\nInjected: line", "\"text/html\\x0aInjected: line\""),
    ])
    func refusesOtherMediaTypes(mediaType: String, expected: String) {
        #expect(document(mediaType).unsupportedMediaTypeReason?.contains(expected) == true)
    }

    @Test(arguments: [nil, MediaType.ociIndex, MediaType.ociManifest])
    func refusesADocumentThatIsBothAnIndexAndAManifest(mediaType: String?) {
        let both = ManifestDocument(schemaVersion: 2, mediaType: mediaType, manifests: [], config: nil, layers: [], fsLayers: nil)
        #expect(both.unsupportedMediaTypeReason?.contains("has both \"manifests\"") == true)
    }
}
