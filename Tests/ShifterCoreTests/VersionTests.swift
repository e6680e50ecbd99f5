import Testing
@testable import ShifterCore

@Test func versionIsSemantic() {
    #expect(ShifterVersion.string.split(separator: ".").count == 3)
}
