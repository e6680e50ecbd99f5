import Testing

@testable import ShifterCore

/// `imageExpandedSizeLimit` and `imageEntryLimit`: the import limits a site may set.
struct ImportLimitKeysTests {
    @Test func absentKeysLeaveTheImportersDefaults() throws {
        let (config, _) = try SiteConfig.parse(minimalConfig, source: "udiRoot.conf")
        #expect(config.imageExpandedSizeLimit == nil)
        #expect(config.imageEntryLimit == nil)
    }

    @Test func sizesTakeSuffixesAndCountsAreWholeNumbers() throws {
        let (config, warnings) = try SiteConfig.parse(
            minimalConfig + "imageExpandedSizeLimit=32g\nimageEntryLimit=2000000\n", source: "udiRoot.conf")
        #expect(config.imageExpandedSizeLimit == 32 << 30)
        #expect(config.imageEntryLimit == 2_000_000)
        #expect(warnings.isEmpty)
    }

    @Test(arguments: [
        (minimalConfig + "imageExpandedSizeLimit=lots", "imageExpandedSizeLimit"),
        (minimalConfig + "imageEntryLimit=0", "imageEntryLimit: \"0\" is not a whole number"),
        (minimalConfig + "imageEntryLimit=-5", "imageEntryLimit"),
    ])
    func badValuesAreRefusedWithTheKey(text: String, expected: String) {
        let error = #expect(throws: SiteConfigError.self) { try SiteConfig.parse(text, source: "udiRoot.conf") }
        #expect(error?.description.contains(expected) == true)
    }
}
