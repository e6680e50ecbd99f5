@testable import ShifterSystem
import Testing
@testable import ShifterRuntime

/// Which device nodes a user's volume may mount: only the node's own, from its /dev, owned by root,
/// named by their host path.
struct UserVolumeDeviceTests {
    static let nodeDevices = FileStatus(kind: .directory, mode: 0o755, uid: 0, gid: 0, device: 5, inode: 1, size: 0,
                                        modificationTime: 0)

    static func node(device: UInt64, uid: UInt32) -> FileStatus {
        FileStatus(kind: .other, mode: 0o666, uid: uid, gid: 0, device: device, inode: 4, size: 0, modificationTime: 0,
                   nodeType: "c", deviceNumber: 0x103)
    }

    struct Case: Sendable, CustomTestStringConvertible {
        let name: String
        let status: FileStatus
        let hostSource: Bool
        let nodeDevices: FileStatus?
        let refusal: String?
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "root's node of the node's /dev", status: node(device: 5, uid: 0), hostSource: true,
             nodeDevices: nodeDevices, refusal: nil),
        Case(name: "a node on another filesystem (a user's FUSE mount, devpts)", status: node(device: 40, uid: 0),
             hostSource: true, nodeDevices: nodeDevices,
             refusal: "outside the node's /dev; only the node's own device nodes are mounted"),
        Case(name: "a node in /dev that is not root's", status: node(device: 5, uid: 1001), hostSource: true,
             nodeDevices: nodeDevices, refusal: "of uid 1001, not root's; only the node's own device nodes are mounted"),
        Case(name: "a node looked up in the container", status: node(device: 5, uid: 0), hostSource: false,
             nodeDevices: nodeDevices,
             refusal: "in the container; only the node's own device nodes are mounted: name its host path with the flag host"),
        Case(name: "a node without a /dev to compare with", status: node(device: 5, uid: 0), hostSource: true,
             nodeDevices: nil, refusal: "outside the node's /dev; only the node's own device nodes are mounted"),
        Case(name: "a /dev that is not a directory", status: node(device: 5, uid: 0), hostSource: true,
             nodeDevices: FileStatus(kind: .regular, mode: 0o644, uid: 0, gid: 0, device: 5, inode: 1, size: 0,
                                     modificationTime: 0),
             refusal: "outside the node's /dev; only the node's own device nodes are mounted"),
    ]

    @Test(arguments: cases)
    func refusal(_ entry: Case) {
        #expect(UserVolumeMounter.deviceRefusal(entry.status, hostSource: entry.hostSource,
                                                nodeDevices: entry.nodeDevices) == entry.refusal)
    }
}
