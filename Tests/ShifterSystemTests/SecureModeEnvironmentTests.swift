import Testing
@testable import ShifterSystem

/// The count of environment entries removed at start is read from the kernel's layout, which the
/// C library handed this test program as it hands the setuid shifter: a normal start removes
/// nothing, so the count is 0 (not unknown) and the kernel's record is not read. runtime.bats
/// checks a real secure-mode start, where the removed variables are restored for the command.
@Suite struct SecureModeEnvironmentTests {
    @Test func aNormalStartRemovedNothing() {
        #expect(ProcessControl.environmentEntriesRemovedAtStart == 0)
        #expect(ProcessControl.environmentBeforeSecureMode() == nil)
    }
}
