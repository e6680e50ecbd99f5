import Testing

@testable import ShifterCore

@Suite("The plugin's plugstack.conf arguments")
struct PluginArgumentsTests {
    @Test("arguments, later ones winning; the compiled-in configuration where none is given", arguments: [
        ([], PluginArguments(configPath: "/etc/shifter/udiRoot.conf")),
        (["shifter_config=/site/udiRoot.conf", "pyxis_compat=1", "enable_ccm=1", "long_options", "shifter_path=/opt/bin/shifter"],
         PluginArguments(configPath: "/site/udiRoot.conf", shifterPath: "/opt/bin/shifter", longOptions: true, enableCCM: true,
                         pyxisCompat: true)),
        (["pyxis_compat=1", "pyxis_compat=0", "enable_ccm=0"], PluginArguments(configPath: "/etc/shifter/udiRoot.conf")),
    ] as [([String], PluginArguments)])
    func parses(arguments: [String], expected: PluginArguments) throws {
        #expect(try PluginArguments.parse(arguments, defaultConfigPath: "/etc/shifter/udiRoot.conf") == expected)
    }

    @Test("an unknown argument, a flag that is not 0 or 1, and a bad path are refused, named", arguments: [
        ("bogus=1", PluginArgumentsError.unknown("bogus=1")),
        ("long_options=1", .unknown("long_options=1")),
        ("long_optionsX", .unknown("long_optionsX")),
        ("enable_ccm", .unknown("enable_ccm")),
        ("enable_ccm=2", .notAFlag("enable_ccm=2")),
        ("pyxis_compat=", .notAFlag("pyxis_compat=")),
        ("shifter_config=relative.conf", .badPath("shifter_config=relative.conf")),
        ("shifter_path=/" + String(repeating: "x", count: 4095), .badPath("shifter_path=/" + String(repeating: "x", count: 4095))),
    ])
    func refuses(argument: String, expected: PluginArgumentsError) {
        #expect(throws: expected) { try PluginArguments.parse([argument], defaultConfigPath: "/etc/shifter/udiRoot.conf") }
    }

    @Test("the messages say which argument and why")
    func messages() {
        #expect(PluginArgumentsError.unknown("bogus=1").description
            == "plugstack argument \"bogus=1\" is unknown (known: shifter_config=PATH, long_options, enable_ccm=0|1, pyxis_compat=0|1, shifter_path=PATH)")
        #expect(PluginArgumentsError.notAFlag("enable_ccm=2").description == "plugstack argument \"enable_ccm=2\": expected 0 or 1")
        #expect(PluginArgumentsError.badPath("shifter_path=x").description
            == "plugstack argument \"shifter_path=x\": the path must be absolute and shorter than 4096")
    }
}
