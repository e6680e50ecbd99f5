import Foundation
import ShifterCore
import ShifterImage
import Testing

@testable import ShifterGateway

/// One user's archive imports never take every worker: past `archiveImportsPerUser` running at
/// once, the next is refused with 429 and the limit's name, and another user's is not.
@Suite struct ArchiveImportsByUserTests {
    @Test func aUserOverTheLimitIsRefusedAndAnotherIsNot() throws {
        let imports = ArchiveImportsByUser()
        // uid 1001 runs one import already.
        #expect(imports.claim(1001, limit: 1))
        let input = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { close(input) }
        let reference = try ImageReference.parse("custom:held:1")
        let attempt = { (uid: UInt32) -> GatewayError? in
            do throws(GatewayError) {
                _ = try GatewayService.importArchive(
                    input, source: "/dev/null", into: ImageStore(directory: "/nonexistent"), reference: reference, userACL: [], groupACL: [],
                    caller: uid, config: GatewayConfig(), importsByUser: imports)
                return nil
            } catch {
                return error
            }
        }
        let refused = attempt(1001)
        #expect(refused?.status == 429)
        #expect(
            refused?.message
                == "import custom:held:1: uid 1001 already runs 1 archive import, the most one user may at once (archiveImportsPerUser); try again when it ends")
        // Another user's import goes on, to the file, which is no archive; and its count ends with it.
        #expect(attempt(1002)?.message == "import custom:held:1: \"/dev/null\": not a regular file (an OCI layout directory must be packed: tar -C DIR -cf FILE.tar .)")
        #expect(imports.claim(1002, limit: 1))
        // With two allowed, the first user's second import goes on too.
        #expect(imports.claim(1001, limit: 2))
    }
}
