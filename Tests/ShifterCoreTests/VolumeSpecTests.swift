import Testing

@testable import ShifterCore

private let kib: UInt64 = 1024
private let mib: UInt64 = kib * 1024
private let gib: UInt64 = mib * 1024
private let tib: UInt64 = gib * 1024
private let pib: UInt64 = tib * 1024

private let parsedSizes: [(String, UInt64)] = [
    ("0", 0),
    ("1", 1),
    ("512", 512),
    ("512b", 512),
    ("512B", 512),
    ("1k", kib),
    ("1K", kib),
    ("64k", 64 * kib),
    ("1m", mib),
    ("10G", 10 * gib),
    ("10g", 10 * gib),
    ("2t", 2 * tib),
    ("3P", 3 * pib),
    ("007", 7),
    ("16383p", 16383 * pib),
    ("18446744073709551615", UInt64.max),
    ("18446744073709551615b", UInt64.max),
]

private let formattedSizes: [UInt64] = [0, 1, 1023, kib, 1536, mib, 10 * gib, 3 * pib, UInt64.max, 8192 * pib]

struct ByteSizeTests {
    @Test(arguments: parsedSizes)
    func parsesSize(text: String, bytes: UInt64) throws {
        #expect(try ByteSize.parse(text) == bytes)
    }

    @Test(arguments: [
        ("", "size is empty"),
        ("G", "must start with a whole number"),
        ("-1", "must start with a whole number"),
        (" 1", "must start with a whole number"),
        ("1 ", "unknown unit"),
        ("1.5G", "must be a whole number"),
        ("10GB", "unknown unit"),
        ("10x", "unknown unit"),
        ("10e", "unknown unit"),
        ("18446744073709551616", "size is too large"),
        ("16384p", "size is too large"),
        ("99999999999999999999999", "size is too large"),
        ("17179869184t", "size is too large"),
    ])
    func rejectsSize(text: String, fragment: String) {
        #expect {
            try ByteSize.parse(text)
        } throws: { error in
            (error as? ByteSizeError)?.description.contains(fragment) == true
        }
    }

    @Test(arguments: formattedSizes)
    func formatRoundTrips(bytes: UInt64) throws {
        #expect(try ByteSize.parse(ByteSize.format(bytes)) == bytes)
    }
}

struct VolumeSpecTests {
    @Test(arguments: [
        ("/a:/b", "/a:/b"),
        ("/global/u1/me:/data", "/global/u1/me:/data"),
        ("/a:/b:ro", "/a:/b:ro"),
        ("/a:/b:RO", "/a:/b:ro"),
        ("/a:/b:rec:ro", "/a:/b:ro:rec"),
        ("/a:/b:slave", "/a:/b:slave"),
        ("/a:/b:private:private", "/a:/b:private"),
        ("/a//b/:/c//d/", "/a/b:/c/d"),
        ("/a/./b:/./c", "/a/b:/c"),
        ("/:/data", "/:/data"),
        ("/a:/var/tmp", "/a:/var/tmp"),
        ("/a:/var/tmp/x", "/a:/var/tmp/x"),
        ("/a:/variable", "/a:/variable"),
        ("/a:/etcetera", "/a:/etcetera"),
        ("/a:/opt/other", "/a:/opt/other"),
        ("/a:/devices", "/a:/devices"),
        ("/a+b-c_d.e:/x", "/a+b-c_d.e:/x"),
        ("/my data//run 1/:/mnt/my mount:ro", "/my data/run 1:/mnt/my mount:ro"),
        ("/dummy:/scratch:perNodeCache=size=10G", "/dummy:/scratch:perNodeCache=size=10G,fs=xfs,method=loop"),
        ("/d:/s:perNodeCache=size=1t,bs=4k,fs=xfs,method=loop", "/d:/s:perNodeCache=size=1T,bs=4K,fs=xfs,method=loop"),
        ("/d:/s:pernodecache=SIZE=100M,FS=XFS,Method=Loop", "/d:/s:perNodeCache=size=100M,fs=xfs,method=loop"),
        ("/d:/s:perNodeCache=size=1000", "/d:/s:perNodeCache=size=1000,fs=xfs,method=loop"),
        ("/home/u:/data:host", "/home/u:/data:host"),
        ("/home/u:/data:HOST:ro", "/home/u:/data:ro:host"),
        ("/scratch:/scratch:tmpfs", "/scratch:/scratch:tmpfs"),
        ("/s:/s:TMPFS=64m", "/s:/s:tmpfs=64M"),
        ("/tmp:/tmp:umount", "/tmp:/tmp:umount"),
    ])
    func parsesVolume(text: String, canonical: String) throws {
        let volume = try VolumeSpec.parse(text)
        #expect(volume.canonical == canonical)
        #expect(try VolumeSpec.parse(volume.canonical) == volume)
    }

    @Test(arguments: [
        ("", "expected FROM:TO[:FLAGS]"),
        ("/a", "expected FROM:TO[:FLAGS]"),
        ("a:/b", "path \"a\" must be absolute"),
        ("/a:b", "path \"b\" must be absolute"),
        (":/b", "path is empty"),
        ("/a:", "path is empty"),
        ("/a/../etc:/b", "may not contain \"..\""),
        ("/a:/b/..", "may not contain \"..\""),
        ("/a\tb:/c", "contains \"\\t\""),
        ("/a:/b,c", "contains \",\""),
        ("/a:/b=c", "contains \"=\""),
        ("/é:/b", "contains \"é\""),
        ("/a:/", "target may not be /"),
        ("/a://", "target may not be /"),
        ("/a:/etc", "target may not be /etc"),
        ("/a:/etc/x", "target may not be under /etc"),
        ("/a:/etc/", "target may not be /etc"),
        ("/a:/var", "target may not be /var"),
        ("/a:/var/lib/x", "target may not be under /var"),
        ("/a:/var/tmpx", "target may not be under /var"),
        ("/a:/proc", "target may not be /proc"),
        ("/a:/sys/fs", "target may not be under /sys"),
        ("/a:/dev/shm", "target may not be under /dev"),
        ("/a:/opt", "target may not be /opt"),
        ("/a:/opt/udiImage/bin", "target may not be under /opt/udiImage"),
        ("/a:/b:rw", "unknown flag \"rw\""),
        ("/a:/b:", "empty flag"),
        ("/a:/b:ro=1", "flag \"ro\" takes no value"),
        ("/a:/b:slave:private", "cannot be combined"),
        ("/a:/b:perNodeCache", "perNodeCache needs size=SIZE"),
        ("/a:/b:perNodeCache=", "perNodeCache needs size=SIZE"),
        ("/a:/b:perNodeCache=fs=xfs", "perNodeCache needs size=SIZE"),
        ("/a:/b:perNodeCache=size=0", "size must be more than 0"),
        ("/a:/b:perNodeCache=size=10x", "unknown unit"),
        ("/a:/b:perNodeCache=size=99999999999P", "too large"),
        ("/a:/b:perNodeCache=size=1G,bs=3k", "power of two"),
        ("/a:/b:perNodeCache=size=1k,bs=4k", "larger than its size"),
        ("/a:/b:perNodeCache=size=1G,method=nbd", "method \"nbd\" is not supported"),
        ("/a:/b:perNodeCache=size=1G,fs=ext-4", "is not a filesystem type name"),
        ("/a:/b:perNodeCache=size=1G,color=red", "unknown perNodeCache option \"color\""),
        ("/a:/b:perNodeCache=size=1G,size=2G", "given twice"),
        ("/a:/b:perNodeCache=size", "must be KEY=VALUE"),
        ("/a:/b:perNodeCache=size=1G:ro", "cannot be combined with other flags"),
        ("/a:/b:perNodeCache=size=1G:perNodeCache=size=1G", "perNodeCache is given twice"),
        ("/a:/b:perNodeCache=size=1G:host", "cannot be combined with other flags"),
        ("/a:/b:host=1", "flag \"host\" takes no value"),
        ("/a:/etc/x:host", "target may not be under /etc"),
        ("/s:/s:tmpfs=0", "tmpfs size must be more than 0"),
        ("/s:/s:tmpfs=lots", "tmpfs size:"),
        ("/s:/s:tmpfs=1.5G", "size must be a whole number (write 1536M, not 1.5G)"),
        ("/s:/s:tmpfs:ro", "tmpfs cannot be combined with other flags"),
        ("/s:/s:tmpfs:host", "tmpfs cannot be combined with other flags"),
        ("/s:/s:tmpfs:tmpfs", "tmpfs is given twice"),
        ("/s:/s:tmpfs:perNodeCache=size=1G", "perNodeCache cannot be combined with other flags"),
        ("/s:/etc/s:tmpfs", "target may not be under /etc"),
        ("/t:/t:umount:ro", "umount cannot be combined with other flags"),
        ("/t:/t:umount:tmpfs", "umount cannot be combined with other flags"),
        ("/t:/t:umount=1", "flag \"umount\" takes no value"),
        ("/d:/dev/nvidia1:umount", "target may not be under /dev"),
    ])
    func rejectsVolume(text: String, fragment: String) {
        #expect {
            try VolumeSpec.parse(text)
        } throws: { error in
            guard let error = error as? VolumeSpecError else { return false }
            return error.input == text && error.description.hasPrefix("volume \"") && error.description.contains(fragment)
        }
    }

    @Test func errorReadsAsOneLine() {
        #expect(throws: VolumeSpecError(input: "/a:/etc/x", reason: "target may not be under /etc")) {
            try VolumeSpec.parse("/a:/etc/x")
        }
        #expect(
            VolumeSpecError(input: "/a:/etc/x", reason: "target may not be under /etc").description
                == #"volume "/a:/etc/x": target may not be under /etc"#)
    }

    @Test func parsesLists() throws {
        #expect(try VolumeSpec.parseList("").isEmpty)
        #expect(try VolumeSpec.parseList(";;").isEmpty)
        let volumes = try VolumeSpec.parseList("/a:/b;/c:/d:ro;")
        #expect(volumes.map(\.canonical) == ["/a:/b", "/c:/d:ro"])
        #expect(throws: VolumeSpecError(input: "/c:/etc", reason: "target may not be /etc")) {
            try VolumeSpec.parseList("/a:/b;/c:/etc")
        }
        #expect(throws: VolumeSpecError(input: "/c:/b/", reason: "another volume already targets /b")) {
            try VolumeSpec.parseList("/a:/b;/c:/b/")
        }
    }

    static func cacheConfig(limit: UInt64? = 10 * gib, types: [String] = ["xfs"]) -> SiteConfig {
        var config = SiteConfig(udiMount: "/var/udiMount", loopMount: "/var/udiLoopMount", imagePath: "/images")
        config.perNodeCachePath = "/scratch/cache"
        config.perNodeCacheSizeLimit = limit
        config.perNodeCacheAllowedFsType = types
        return config
    }

    @Test func enforcesCacheSizeLimit() throws {
        let config = Self.cacheConfig()
        try VolumeSpec.parse("/d:/s:perNodeCache=size=10G").validate(against: config)
        try VolumeSpec.parse("/a:/b").validate(against: config)
        let over = try VolumeSpec.parse("/d:/s:perNodeCache=size=11G")
        #expect(throws: VolumeSpecError(
            input: "/d:/s:perNodeCache=size=11G,fs=xfs,method=loop",
            reason: "cache size 11G is over the site limit of 10G")) { try over.validate(against: config) }
        try over.validate(against: Self.cacheConfig(limit: nil))
        let oneByteOver = try VolumeSpec.parse("/d:/s:perNodeCache=size=\(10 * gib + 1)")
        #expect(throws: VolumeSpecError.self) { try oneByteOver.validate(against: config) }
    }

    @Test func enforcesTheTotalOfARequestsCaches() throws {
        var config = Self.cacheConfig(limit: nil)
        config.perNodeCacheTotalLimit = 20 * gib
        let fits = try VolumeSpec.parseList("/a:/s1:perNodeCache=size=10G;/b:/b;/c:/s2:perNodeCache=size=10G")
        try VolumeSpec.validate(fits, against: config)
        let over = try VolumeSpec.parseList("/a:/s1:perNodeCache=size=10G;/c:/s2:perNodeCache=size=10G;/d:/s3:perNodeCache=size=1M")
        #expect(throws: VolumeSpecError(
            input: "/d:/s3:perNodeCache=size=1M,fs=xfs,method=loop",
            reason: "the 3 per-node caches of this request add up to 20481M, over the site limit of 20G per request (this one asks for 1M)")) {
            try VolumeSpec.validate(over, against: config)
        }
        // Sizes that would wrap around 64 bits add up to more than any limit, not less.
        let huge = try VolumeSpec.parseList("/a:/s1:perNodeCache=size=\(UInt64(1) << 63);/c:/s2:perNodeCache=size=\(UInt64(1) << 63)")
        #expect(throws: VolumeSpecError.self) { try VolumeSpec.validate(huge, against: config) }
        try VolumeSpec.validate(over, against: Self.cacheConfig(limit: nil))
    }

    @Test func enforcesTheTmpfsLimitPerVolumeAndPerRequest() throws {
        var config = Self.cacheConfig(limit: nil)
        config.tmpfsVolumeSizeLimit = 1 * gib
        try VolumeSpec.validate(VolumeSpec.parseList("/a:/a:tmpfs;/b:/b"), against: config)
        try VolumeSpec.validate(VolumeSpec.parseList("/a:/a:tmpfs=512M;/b:/b:tmpfs=512M"), against: config)
        #expect(throws: VolumeSpecError(input: "/a:/a:tmpfs=2G", reason: "tmpfs size 2G is over the site limit of 1G (tmpfsVolumeSizeLimit)")) {
            try VolumeSpec.validate(VolumeSpec.parseList("/a:/a:tmpfs=2G"), against: config)
        }
        // Together they may not pass it; those without a size share what the others leave.
        for list in ["/a:/a:tmpfs=512M;/b:/b:tmpfs=513M", "/a:/a:tmpfs;/b:/b:tmpfs=1G", "/a:/a:tmpfs;/b:/b:tmpfs=1073741000"] {
            #expect(throws: VolumeSpecError.self) { try VolumeSpec.validate(VolumeSpec.parseList(list), against: config) }
        }
        // The one without a size is named, not the sized one it follows.
        #expect(throws: VolumeSpecError(
            input: "/b:/b:tmpfs",
            reason: "a tmpfs without a size gets an equal share of what the others leave of the site limit of 1G (tmpfsVolumeSizeLimit), and here that is less than 1M; give the volumes sizes")) {
            try VolumeSpec.validate(VolumeSpec.parseList("/a:/a:tmpfs=1G;/b:/b:tmpfs"), against: config)
        }
        let shared = try VolumeSpec.parseList("/a:/a:tmpfs;/b:/b:tmpfs=256M;/c:/c:tmpfs")
        try VolumeSpec.validate(shared, against: config)
        #expect(VolumeSpec.tmpfsShare(of: shared, limit: config.tmpfsVolumeSizeLimit) == 384 << 20)
    }

    @Test func umountLeavesOutOnlyASiteMount() throws {
        var config = Self.cacheConfig(limit: nil)
        config.siteFs = [SiteMount(source: "/global/homes", target: "/home")]
        try VolumeSpec.validate(VolumeSpec.parseList("/tmp:/tmp:umount;/home:/home:umount"), against: config)
        #expect(throws: VolumeSpecError(input: "/opt/x:/opt/x:umount",
                                        reason: "umount leaves out a site mount, and /opt/x is none (this site's: /tmp, /home)")) {
            try VolumeSpec.validate(VolumeSpec.parseList("/opt/x:/opt/x:umount"), against: config)
        }
    }

    @Test func enforcesAllowedFilesystems() throws {
        let ext4 = try VolumeSpec.parse("/d:/s:perNodeCache=size=1G,fs=ext4")
        #expect {
            try ext4.validate(against: Self.cacheConfig())
        } throws: { error in
            (error as? VolumeSpecError)?.description.contains(#"filesystem "ext4" is not allowed for per-node caches (allowed: xfs)"#) == true
        }
        try ext4.validate(against: Self.cacheConfig(types: ["xfs", "ext4"]))
        #expect(throws: VolumeSpecError.self) {
            try VolumeSpec.parse("/d:/s:perNodeCache=size=1G").validate(against: Self.cacheConfig(types: []))
        }
    }

    @Test func refusesCacheWithoutCachePath() throws {
        var config = Self.cacheConfig()
        config.perNodeCachePath = nil
        #expect {
            try VolumeSpec.parse("/d:/s:perNodeCache=size=1G").validate(against: config)
        } throws: { error in
            (error as? VolumeSpecError)?.reason.contains("no per-node caches") == true
        }
    }
}

struct SiteMountTests {
    @Test(arguments: [
        ("/global", "/global:/global"),
        ("/home:/home", "/home:/home"),
        ("/var/opt/cray/spool:/var/spool:rec", "/var/opt/cray/spool:/var/spool:rec"),
        ("/etc/site/hosts.d:/etc/hosts.d:ro", "/etc/site/hosts.d:/etc/hosts.d:ro"),
        ("/dev/infiniband:/dev/infiniband:slave", "/dev/infiniband:/dev/infiniband:slave"),
        ("/a//b/", "/a/b:/a/b"),
        ("/opt/udiImage", "/opt/udiImage:/opt/udiImage"),
        ("/a:/b:private:ro", "/a:/b:ro:private"),
        ("/a:/b:REC", "/a:/b:rec"),
        ("/sys/fs/cgroup:/sys/fs/cgroup:ro:rec", "/sys/fs/cgroup:/sys/fs/cgroup:ro:rec"),
        ("/etc/passwd.site:/etc/site/passwd", "/etc/passwd.site:/etc/site/passwd"),
        ("/./a/.", "/a:/a"),
    ])
    func parsesSiteMount(text: String, canonical: String) throws {
        let mount = try SiteMount.parse(text)
        #expect(mount.canonical == canonical)
        #expect(try SiteMount.parse(mount.canonical) == mount)
    }

    @Test(arguments: [
        ("relative", "must be absolute"),
        ("/a/../b", "may not contain \"..\""),
        ("/x:/etc", "target may not be /etc"),
        ("/x:/etc/passwd", "target may not be /etc/passwd"),
        ("/var", "target may not be /var"),
        ("/x:/", "target may not be /"),
        ("/x:/opt", "target may not be /opt"),
        ("/x:/y:perNodeCache=size=1G", "perNodeCache is only for user volumes"),
        ("/x:/y:host", "host is only for user volumes"),
        ("/x:/y:bogus", "unknown flag \"bogus\""),
        ("", "path is empty"),
        ("/x:", "path is empty"),
        ("/x:/y:", "empty flag"),
        ("/x:/y:ro=yes", "takes no value"),
        ("/x:/y:slave:private", "cannot be combined"),
        ("/x'y", "contains \"'\""),
        ("/x:/etc/group", "target may not be /etc/group"),
        ("/x:/etc/nsswitch.conf", "target may not be /etc/nsswitch.conf"),
        ("/x:/dev", "target may not be /dev"),
        ("/x:relative", "must be absolute"),
        ("/x:/y/../../z", "may not contain \"..\""),
    ])
    func rejectsSiteMount(text: String, fragment: String) {
        #expect {
            try SiteMount.parse(text)
        } throws: { error in
            guard let error = error as? VolumeSpecError else { return false }
            return error.description.hasPrefix("siteFs entry \"") && error.description.contains(fragment)
        }
    }

    @Test func parsesListsWithSemicolonsOrSpaces() throws {
        let mounts = try SiteMount.parseList("/home:/home;/global  /var/spool:/var/spool:rec\t;")
        #expect(mounts.map(\.canonical) == ["/home:/home", "/global:/global", "/var/spool:/var/spool:rec"])
    }
}
