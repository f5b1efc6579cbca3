// swift-tools-version:5.9
// The svc-rewarder FFI library for iOS and macOS apps: the UniFFI-generated Swift bindings
// (module `rewarder`) over the Rust static libraries packed as `rewarderFFI.xcframework`.
//
// Neither the bindings nor the XCFramework are committed. Before `swift build` on a Mac:
//   bash scripts/ffi-swift-check.sh     # generates Sources/rewarder/rewarder.swift
//   bash scripts/ffi-xcframework.sh     # builds swift/rewarderFFI.xcframework (macOS + Xcode)
// or, for the tests, `bash scripts/ffi-swift-test.sh` (both steps, then `swift test`).
//
// On Linux (CI's Swift job) there is no XCFramework: `bash scripts/ffi-swift-test.sh` builds the
// host library target/<profile>/librewarder_ffi.so, hands the generated C module `rewarderFFI`
// to the compiler (-Xcc -fmodule-map-file=…/rewarderFFI.modulemap) and the library's folder to
// the linker (-Xlinker -L…); the package only asks to link `rewarder_ffi`.
import PackageDescription

#if os(Linux)
let rewarderTarget: Target = .target(
    name: "rewarder",
    path: "Sources/rewarder",
    linkerSettings: [.linkedLibrary("rewarder_ffi")]
)
let ffiTargets: [Target] = []
#else
// librewarder_ffi.a for each platform, with Headers/rewarderFFI.h and module.modulemap.
let rewarderTarget: Target = .target(name: "rewarder", dependencies: ["rewarderFFI"], path: "Sources/rewarder")
let ffiTargets: [Target] = [
    .binaryTarget(name: "rewarderFFI", path: "rewarderFFI.xcframework"),
]
#endif

let package = Package(
    name: "rewarder",
    platforms: [.iOS(.v15), .macOS(.v12)],
    products: [
        .library(name: "rewarder", targets: ["rewarder"]),
    ],
    targets: ffiTargets + [
        // rewarder.swift (generated) and the hand-written conveniences beside it.
        rewarderTarget,
        .testTarget(name: "rewarderTests", dependencies: ["rewarder"], path: "Tests/rewarderTests"),
    ]
)
