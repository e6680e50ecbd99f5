import PropertyBased
import Testing

@testable import ShifterCore

// Random input for every parser: none may trap, every error is one line, and canonical forms
// read back to equal values.

private let anyBytes = Gen<UInt8>.value(in: 0...255).array(of: 0...48).map { String(decoding: $0, as: UTF8.self) }

/// Characters that matter to the grammars, so random strings often get past the first check.
private let grammarCharacters: [Character] = Array(
    "abcxyz019AZ/:.@;=,-_+ #\\\t\n\r\u{0}é\u{301}\"'$*~%")
private let grammarStrings = Gen<Character?>.element(of: grammarCharacters).map { $0 ?? "a" }.string(of: 0...40)

private let referenceFragments = [
    "docker:", "id:", "custom:", "local:", "sha256:", String(repeating: "ab", count: 32), "ubuntu", "Ubuntu", "/",
    ":", "@", "localhost", "registry.example.org", ":5000", "library", "a__b", "a-b", ".", "..", "_", "14.04", "",
]
private let volumeFragments = [
    "/a", "/b", "/etc", "/var", "/var/tmp", "/opt/udiImage", "/", "//", "..", ".", ":", ";", "ro", "rec", "slave",
    "private", "perNodeCache=", "size=", "10G", "1k", "bs=", "4k", "fs=", "xfs", "ext4", "method=", "loop", ",", "=",
    "18446744073709551615", "p", "x",
]
private let configFragments = [
    "udiMount=/var/udiMount\n", "loopMount=/var/udiLoopMount\n", "imagePath=/images\n", "\n", "#", " ", "=", "\\\n",
    "\r\n", "siteFs=", "/home:/home", ";", "siteEnv=", "A=1", "siteEnvAppend=", "PATH=/x", "module_", "mpich", "_",
    "siteEnv", "enabled=", "0", "1", "conflict=", "defaultModules=", "perNodeCacheSizeLimit=", "10G", "cpPath=/bin/cp",
    "maxGroupCount=", "99999999999999999999", "rootfsType=", "ramfs", "imageGateway=", "http://gw", "local", "bogus=",
    "system=", "x", "gatewayTimeout=", "udiMount=/", "allowLocalChroot=", "yes",
]
private let optionFragments = [
    "-i", "--image", "--image=", "ubuntu", "-V", "--volume=", "/a:/b", "/a:/etc", "-e", "A=1", "--env=", "-E", "-v", "-h",
    "-m", "--module=", "none", "a,b", "--entrypoint", "--entrypoint=", "/bin/x", "--workdir", "--workdir=", "-w", "/",
    "--", "-", "--config=", "--version", "cmd", "-Ei", "-wx", "--bogus", "",
]

private func fragments(_ pieces: [String], count: ClosedRange<Int>) -> Generator<String, some SendableSequenceType> {
    Gen<String?>.element(of: pieces).map { $0 ?? "" }.array(of: count).map { $0.joined() }
}

private func isOneLine(_ text: String) -> Bool {
    !text.unicodeScalars.contains { $0 == "\n" || $0 == "\r" || $0.value == 0 }
}

private func checkImageReference(_ text: String) {
    for type in ImageType.allCases {
        do {
            let reference = try ImageReference.parse(text, defaultType: type)
            #expect(try ImageReference.parse(reference.canonical) == reference, "canonical \(reference.canonical)")
            _ = reference.dockerReference
        } catch {
            #expect(isOneLine("\(error)"))
            #expect(error.input == text)
        }
    }
}

private func checkVolumes(_ text: String) {
    do {
        for volume in try VolumeSpec.parseList(text) {
            #expect(try VolumeSpec.parse(volume.canonical) == volume, "canonical \(volume.canonical)")
            var config = SiteConfig(udiMount: "/u", loopMount: "/l", imagePath: "/i")
            config.perNodeCachePath = "/cache"
            config.perNodeCacheSizeLimit = 1 << 30
            do { try volume.validate(against: config) } catch { #expect(isOneLine("\(error)")) }
        }
    } catch {
        #expect(isOneLine("\(error)"))
    }
    do {
        for mount in try SiteMount.parseList(text) {
            #expect(try SiteMount.parse(mount.canonical) == mount, "canonical \(mount.canonical)")
        }
    } catch {
        #expect(isOneLine("\(error)"))
    }
}

private func checkSizeAndPath(_ text: String) {
    do {
        let bytes = try ByteSize.parse(text)
        #expect(try ByteSize.parse(ByteSize.format(bytes)) == bytes)
    } catch {
        #expect(isOneLine("\(error)"))
    }
    do {
        let path = try NormalisedPath.parse(text)
        #expect(try NormalisedPath.parse(path) == path)
    } catch {
        #expect(isOneLine("\(error)"))
    }
}

private func checkConfig(_ text: String) {
    do {
        let (config, warnings) = try SiteConfig.parse(text, source: "udiRoot.conf")
        #expect(warnings.allSatisfy(isOneLine))
        for name in config.modules.keys {
            do { _ = try config.selectModules(.named([name])) } catch { #expect(isOneLine("\(error)")) }
        }
        do { _ = try config.selectModules(.siteDefault) } catch { #expect(isOneLine("\(error)")) }
        _ = ContainerEnvironment.merged(host: [text], modules: Array(config.modules.values), site: config.environment)
    } catch {
        #expect(isOneLine("\(error)"))
    }
    do { _ = try EnvironmentFile.parse(text, source: "f") } catch { #expect(isOneLine("\(error)")) }
    do { _ = try ImageMetadata.decode(Array(text.utf8)) } catch { #expect(isOneLine("\(error)")) }
}

private func checkOptions(_ arguments: [String], _ environmentValue: String) {
    let environment = ["SHIFTER_IMAGE": environmentValue, "SHIFTER_VOLUME": environmentValue, "SHIFTER_MODULE": environmentValue]
    do {
        let options = try ShifterOptions.parse(arguments: arguments, environment: environment)
        if let modules = options.modules.canonical { #expect(try ModuleRequest.parse(modules) == options.modules) }
        do { _ = try options.imageReference(defaultType: .docker) } catch { #expect(isOneLine("\(error)")) }
        do {
            _ = try ContainerCommand.arguments(options.command, entrypoint: options.entrypoint, imageEntrypoint: nil, imageCmd: nil)
        } catch {
            #expect(isOneLine("\(error)"))
        }
    } catch {
        #expect(isOneLine("\(error)"))
    }
}

struct ParserPropertyTests {
    @Test func imageReferencesNeverTrap() async {
        await propertyCheck(count: 400, input: anyBytes) { checkImageReference($0) }
        await propertyCheck(count: 400, input: grammarStrings) { checkImageReference($0) }
        await propertyCheck(count: 3000, input: fragments(referenceFragments, count: 0...6)) { checkImageReference($0) }
    }

    @Test func volumesNeverTrap() async {
        await propertyCheck(count: 400, input: anyBytes) { checkVolumes($0) }
        await propertyCheck(count: 400, input: grammarStrings) { checkVolumes($0) }
        await propertyCheck(count: 3000, input: fragments(volumeFragments, count: 0...10)) { checkVolumes($0) }
    }

    @Test func sizesAndPathsNeverTrap() async {
        await propertyCheck(count: 400, input: anyBytes) { checkSizeAndPath($0) }
        await propertyCheck(count: 400, input: grammarStrings) { checkSizeAndPath($0) }
        await propertyCheck(count: 400, input: Gen<UInt64>.value()) { bytes in
            do {
                let parsed = try ByteSize.parse(ByteSize.format(bytes))
                #expect(parsed == bytes)
            } catch {
                Issue.record("\(error)")
            }
        }
        let digits = Gen<Character?>.element(of: Array("0123456789")).map { $0 ?? "0" }.string(of: 1...24)
        let units = Gen<String?>.element(of: ["", "b", "k", "M", "g", "T", "p", "x"]).map { $0 ?? "" }
        await propertyCheck(count: 400, input: digits, units) { number, unit in checkSizeAndPath(number + unit) }
    }

    @Test func siteConfigsNeverTrap() async {
        await propertyCheck(count: 300, input: anyBytes) { checkConfig($0) }
        await propertyCheck(count: 300, input: grammarStrings) { checkConfig($0) }
        await propertyCheck(count: 3000, input: fragments(configFragments, count: 0...20)) { checkConfig($0) }
    }

    @Test func optionsNeverTrap() async {
        let arguments = Gen<String?>.element(of: optionFragments).map { $0 ?? "" }.array(of: 0...8)
        await propertyCheck(count: 3000, input: arguments, fragments(volumeFragments + optionFragments, count: 0...4)) {
            checkOptions($0, $1)
        }
        await propertyCheck(count: 300, input: anyBytes.array(of: 0...4), anyBytes) { checkOptions($0, $1) }
        await propertyCheck(count: 300, input: anyBytes) { text in
            do {
                let request = try ModuleRequest.parse(text)
                if let canonical = request.canonical { #expect(try ModuleRequest.parse(canonical) == request) }
            } catch {
                #expect(isOneLine("\(error)"))
            }
            do { _ = try EnvironmentAssignment.parse(text) } catch { #expect(isOneLine("\(error)")) }
        }
    }
}
