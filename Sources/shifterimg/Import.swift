import ArgumentParser
import ShifterCore
import ShifterGatewayClient
import ShifterImage

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

#if canImport(Glibc)
import Glibc
#endif

extension Shifterimg {
    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Import an image archive (any user) or a squashfs file (administrators and import users) as a custom image.",
            discussion: """
                FILE is an image archive written without a registry (docker save, podman save, \
                skopeo copy ... docker-archive: or oci-archive:, gzip-compressed or not), which the \
                gateway converts as it would a pull, private to you unless --user or --group name \
                others (administrators' imports are public unless they do); or a squashfs image \
                file, published as it is. The gateway opens FILE with \
                your rights, so FILE must be on a filesystem the gateway host sees at the same path. \
                An OCI image layout directory is imported once packed: tar -C DIR -cf FILE.tar . \
                In local mode (imageGateway=local) only root imports, public unless --user or \
                --group name who may use the image.
                """)

        @OptionGroup var global: GlobalOptions

        @Option(help: ArgumentHelp(
            "squashfs, docker-archive, oci-archive, or archive (either kind); by default told from the file's first bytes.",
            valueName: "FORMAT"))
        var format: String?

        @Argument(help: ArgumentHelp("The image archive or squashfs file.", valueName: "FILE"))
        var file: String

        @Argument(help: ArgumentHelp("The image name, such as mytool:1.2 or custom:mytool:1.2.", valueName: "NAME"))
        var name: String

        func run() throws {
            let command = "import \(file) \(name)"
            let mode = try global.loadMode(command: command)
            do {
                let prefix = ImageType.custom.rawValue + ":"
                let reference = try ImageReference.parse(name.hasPrefix(prefix) ? name : prefix + name)
                let (users, groups) = try global.accessLists()
                let path = absolutePath(file)
                let format = try self.format ?? Self.detectFormat(path)
                guard GatewayImportRequest.formats.contains(format) else {
                    throw ImageImportError(.invalidManifest, "--format \(format): expected squashfs, docker-archive, oci-archive or archive")
                }
                switch mode {
                case .local(let service):
                    guard getuid() == 0 else {
                        throw ImageImportError(.store, "imageGateway=local: only root may import into the image store \(service.store.directory)")
                    }
                    if format == "squashfs" {
                        let image = try SquashfsFileImporter(store: service.store).importFile(path, as: reference, userACL: users, groupACL: groups)
                        print("imported \(reference.canonical) \(image.digest)")
                    } else {
                        let input = open(path, O_RDONLY | O_CLOEXEC)
                        guard input >= 0 else { throw ImageImportError(.io, "\(path): \(String(cString: strerror(errno)))") }
                        defer { close(input) }
                        let importer = ImageArchiveImporter(store: service.store, options: ImportOptions(userACL: users, groupACL: groups))
                        let result = try importer.importArchive(input, name: path, as: reference)
                        print("imported \(reference.canonical) \(result.metadata.digest)")
                    }
                case .gateway(let settings):
                    let record = try settings.client.importImage(
                        reference, filepath: path, format: format, allowedUIDs: users, allowedGIDs: groups)
                    print("imported \(displayName(record)) \(record.id ?? "-")")
                }
            } catch {
                throw fail(command, error)
            }
        }

        /// `squashfs` for a file that starts with the squashfs magic, else `archive`; a directory
        /// (an unpacked OCI layout) is refused with the way to pack it.
        static func detectFormat(_ path: String) throws(ImageImportError) -> String {
            var status = stat()
            guard stat(path, &status) == 0 else { throw ImageImportError(.io, "\(path): \(String(cString: strerror(errno)))") }
            if status.st_mode & S_IFMT == S_IFDIR {
                throw ImageImportError(
                    .invalidManifest, "\(path) is a directory; pack an OCI image layout first (tar -C \(path) -cf \(path).tar .) and import the tar")
            }
            let input = open(path, O_RDONLY | O_CLOEXEC)
            guard input >= 0 else { throw ImageImportError(.io, "\(path): \(String(cString: strerror(errno)))") }
            defer { close(input) }
            var magic = [UInt8](repeating: 0, count: 4)
            let count = magic.withUnsafeMutableBytes { read(input, $0.baseAddress, 4) }
            return count == 4 && magic == SquashfsFileImporter.magic ? "squashfs" : "archive"
        }

        /// `path` made absolute against the working directory, since the gateway has another one.
        private func absolutePath(_ path: String) -> String {
            if path.hasPrefix("/") { return path }
            let directory = FileManager.default.currentDirectoryPath
            return (directory.hasSuffix("/") ? directory : directory + "/") + path
        }
    }
}
