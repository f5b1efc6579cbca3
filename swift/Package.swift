// swift-tools-version:5.9
// The svc-rewarder FFI library for iOS and macOS apps: the UniFFI-generated Swift bindings
// (module `rewarder`) over the Rust static libraries packed as `rewarderFFI.xcframework`.
//
// Neither the bindings nor the XCFramework are committed. Before `swift build` on a Mac:
//   bash scripts/ffi-swift-check.sh     # generates Sources/rewarder/rewarder.swift
//   bash scripts/ffi-xcframework.sh     # builds swift/rewarderFFI.xcframework (macOS + Xcode)
import PackageDescription

let package = Package(
    name: "rewarder",
    platforms: [.iOS(.v15), .macOS(.v12)],
    products: [
        .library(name: "rewarder", targets: ["rewarder"]),
    ],
    targets: [
        // librewarder_ffi.a for each platform, with Headers/rewarderFFI.h and module.modulemap.
        .binaryTarget(name: "rewarderFFI", path: "rewarderFFI.xcframework"),
        // rewarder.swift (generated) and the hand-written conveniences beside it.
        .target(name: "rewarder", dependencies: ["rewarderFFI"], path: "Sources/rewarder"),
        .testTarget(name: "rewarderTests", dependencies: ["rewarder"], path: "Tests/rewarderTests"),
    ]
)
