// swift-tools-version:6.3
import Foundation
import PackageDescription

// Host builds target the CPU they are built on: without FMA in the target, SIMD
// `addProduct` lowers to one libm call per lane (see shared/DESIGN.md). Where
// that CPU has AVX-512 the kernels use 16-lane vectors (IOP_AVX512); boards
// are cross-built separately (cross/).
let hostHasAVX512 = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?.contains(" avx512f") ?? false
let nativeCPU: [SwiftSetting] = [.unsafeFlags(["-target-cpu", "native"])]
    + (hostHasAVX512 ? [.define("IOP_AVX512")] : [])

let package = Package(
    name: "iop",
    products: [
        .executable(name: "iop", targets: ["iop"]),
        .executable(name: "iop-node", targets: ["iop-node"]),
        .library(name: "IOPCore", targets: ["IOPCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
    ],
    targets: [
        // Board runtime: libc only, Embedded-Swift compatible (scripts/check-embedded).
        .target(name: "CIOPThreads", cSettings: [.unsafeFlags(["-O2"])]),
        .target(name: "CIOPSystem"),
        .target(name: "IOPCore", dependencies: ["CIOPThreads"], swiftSettings: nativeCPU),
        .target(name: "IOPWire"),
        .systemLibrary(name: "CZMQ", path: "Sources/CZMQ"),
        .target(name: "IOPNet", dependencies: ["CZMQ"]),
        .target(name: "IOPNode", dependencies: ["IOPCore", "IOPWire", "IOPNet", "CIOPSystem"], swiftSettings: nativeCPU),
        .target(name: "IOPService", dependencies: ["CIOPSystem"]),

        .executableTarget(
            name: "iop-node", dependencies: ["IOPNode", "IOPService", "IOPNet", "IOPWire", "IOPCore", "CIOPSystem"],
            swiftSettings: nativeCPU),

        // Host tools.
        .target(
            name: "IOPModel",
            dependencies: ["IOPCore", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            exclude: ["ONNX/onnx-subset.proto"],
            swiftSettings: nativeCPU),
        .target(name: "IOPPlan", dependencies: ["IOPModel", "IOPCore", "IOPNode"], swiftSettings: nativeCPU),
        .executableTarget(
            name: "iop",
            dependencies: ["IOPModel", "IOPCore", "IOPPlan", "IOPNode", "IOPNet", "IOPWire", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: nativeCPU),

        // Tests.
        .target(name: "CAllocCounter", path: "Tests/CAllocCounter"),
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(
            name: "IOPCoreTests",
            dependencies: ["IOPCore", "CAllocCounter", "TestSupport", .product(name: "PropertyBased", package: "swift-property-based")],
            swiftSettings: nativeCPU),
        .testTarget(name: "IOPWireTests", dependencies: ["IOPWire", "IOPNet"]),
        .testTarget(
            name: "IOPPlanTests",
            dependencies: ["IOPPlan", "IOPModel", "IOPCore", "IOPNode", "IOPNet", "IOPWire", "TestSupport", "CAllocCounter"]),
        .testTarget(
            name: "IOPModelTests",
            dependencies: ["IOPModel", "IOPCore", "iop", "iop-node", "TestSupport"],
            resources: [.copy("Fixtures")],
            swiftSettings: nativeCPU),
    ]
)
