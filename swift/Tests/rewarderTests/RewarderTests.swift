// Smoke tests of the Swift package against the real Rust library: `bash scripts/ffi-swift-test.sh`
// (on a Mac over the XCFramework, on Linux over the host librewarder_ffi.so; CI runs both).
// The behaviour itself is tested through Kotlin and Rust; these check the linkage.

import Foundation
import XCTest
@testable import rewarder

final class RewarderTests: XCTestCase {
    func testContentIdOfNothingIsBlake3OfTheEmptyString() {
        XCTAssertEqual(
            contentId(bytes: Data()),
            "b3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        )
    }

    func testMalformedResultsAreInvalidWithTheirCode() {
        XCTAssertThrowsError(try verifyResult(resultJson: "not json", trustedKeys: [])) { error in
            XCTAssertEqual((error as? RewarderError)?.apiCode, "malformed_json")
        }
        XCTAssertThrowsError(try verifyResult(resultJson: "{}", trust: .embeddedKeys, inputs: nil, policy: nil)) { error in
            XCTAssertEqual((error as? RewarderError)?.apiCode, "schema")
        }
    }

    func testTheEmbeddedNodeStartsAndStopsTwice() throws {
        let node = try EmbeddedNode(config: EmbeddedConfig(port: 0, requirePq: false, authKeys: nil))
        XCTAssertTrue(node.baseUrl().hasPrefix("http://127.0.0.1:"))
        node.stop()
        node.stop()
    }
}
