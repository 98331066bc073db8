// swift-tools-version:6.3
import Foundation
import PackageDescription

// Host builds target the CPU they are built on: without FMA in the target, SIMD
// `addProduct` lowers to one libm call per lane (see shared/DESIGN.md). Where
// that CPU has AVX-512 the kernels use 16-lane vectors (IOP_AVX512); boards
// are cross-built separately (cross/). IOP_TARGET_CPU builds for another x86
// CPU instead, by its LLVM name: `haswell` runs on any AVX2 + FMA machine (Intel
// since 2013, every AMD Zen), `skylake-avx512` on any with AVX-512 (Intel Xeon
// since 2017, AMD Zen 4 and 5); or a model such as `znver3`. README "Kernels".
let environment = ProcessInfo.processInfo.environment
let targetCPU = environment["IOP_TARGET_CPU"].flatMap { $0.isEmpty ? nil : $0 } ?? "native"
let avx512CPUs: Set<String> = [
    "skylake-avx512", "skx", "cascadelake", "cooperlake", "cannonlake", "icelake-client",
    "icelake-server", "tigerlake", "rocketlake", "sapphirerapids", "emeraldrapids", "graniterapids", "znver4",
    "znver5",
]
let targetHasAVX512 =
    targetCPU == "native"
    ? (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?.contains(" avx512f") ?? false
    : avx512CPUs.contains(targetCPU)
let nativeCPU: [SwiftSetting] =
    [.unsafeFlags(["-target-cpu", targetCPU])]
    + (targetHasAVX512 ? [.define("IOP_AVX512")] : [])

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
        // Board runtime: libc and libzmq only, Embedded-Swift compatible (scripts/check-embedded).
        // The pipeline reads model -> plan -> program -> node -> core; host tools never reach the board's sockets
        // except through iop's own commands (docs/architecture.md).
        .target(name: "CIOPThreads", cSettings: [.unsafeFlags(["-O2"])]),
        .target(name: "CIOPSystem"),
        .target(name: "IOPCore", dependencies: ["CIOPThreads"], swiftSettings: nativeCPU),
        .target(name: "IOPWire"),
        .systemLibrary(name: "CZMQ", path: "Sources/CZMQ"),
        .target(name: "CIOPZap", dependencies: ["CZMQ"], linkerSettings: [.linkedLibrary("zmq")]),
        .target(name: "IOPNet", dependencies: ["CZMQ", "CIOPZap"]),
        .target(name: "IOPProgram", dependencies: ["IOPCore", "IOPWire", "IOPAudio", "CIOPSystem"]),
        .target(
            name: "IOPNode", dependencies: ["IOPProgram", "IOPAudio", "IOPCore", "IOPWire", "IOPNet", "CIOPSystem"],
            swiftSettings: nativeCPU),
        .target(name: "IOPService", dependencies: ["CIOPSystem"]),
        .target(name: "IOPAudio"),
        .target(
            name: "IOPProfile", dependencies: ["IOPCore", "IOPProgram", "IOPNet", "CIOPSystem"],
            swiftSettings: nativeCPU),
        .executableTarget(
            name: "iop-node",
            dependencies: [
                "IOPNode", "IOPProgram", "IOPAudio", "IOPService", "IOPNet", "IOPWire", "IOPCore", "CIOPSystem",
                "IOPProfile",
            ],
            swiftSettings: nativeCPU),

        // Host tools.
        .target(
            name: "IOPModel",
            dependencies: ["IOPCore", "IOPAudio", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            exclude: ["ONNX/onnx-subset.proto"],
            swiftSettings: nativeCPU),
        .target(name: "IOPPlan", dependencies: ["IOPModel", "IOPCore", "IOPProgram"], swiftSettings: nativeCPU),
        .executableTarget(
            name: "iop",
            dependencies: [
                "IOPModel", "IOPCore", "IOPPlan", "IOPProgram", "IOPNode", "IOPNet", "IOPWire", "IOPAudio",
                "CIOPSystem",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: nativeCPU),

        // Tests: one target per module with logic, beside what it tests.
        .target(name: "CAllocCounter", path: "Tests/CAllocCounter"),
        .target(
            name: "TestSupport", path: "Tests/TestSupport",
            exclude: ["Fixtures/make_fixtures.py", "Fixtures/make_audio_fixtures.py"],
            resources: [.copy("Fixtures")]),
        .target(
            name: "PlanTestSupport", dependencies: ["IOPPlan", "IOPModel", "IOPCore", "IOPAudio"],
            path: "Tests/PlanTestSupport"),
        .testTarget(
            name: "IOPCoreTests",
            dependencies: [
                "IOPCore", "CAllocCounter", "TestSupport",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            swiftSettings: nativeCPU),
        .testTarget(name: "IOPWireTests", dependencies: ["IOPWire"]),
        .testTarget(name: "IOPAudioTests", dependencies: ["IOPAudio", "CAllocCounter", "TestSupport"]),
        .testTarget(name: "IOPNetTests", dependencies: ["IOPNet", "IOPWire"]),
        .testTarget(
            name: "IOPProgramTests",
            dependencies: [
                "IOPProgram", "IOPPlan", "IOPModel", "IOPCore", "IOPWire", "TestSupport", "PlanTestSupport",
            ]),
        .testTarget(
            name: "IOPNodeTests",
            dependencies: [
                "IOPNode", "IOPProgram", "IOPPlan", "IOPModel", "IOPCore", "IOPNet", "IOPWire", "TestSupport",
                "PlanTestSupport", "CAllocCounter",
            ]),
        .testTarget(
            name: "IOPPlanTests",
            dependencies: [
                "IOPPlan", "IOPProgram", "IOPModel", "IOPCore", "IOPProfile", "TestSupport", "PlanTestSupport",
            ]),
        .testTarget(
            name: "IOPModelTests", dependencies: ["IOPModel", "IOPCore", "TestSupport"], swiftSettings: nativeCPU),
        .testTarget(
            name: "iopTests",
            dependencies: [
                "iop", "iop-node", "IOPModel", "IOPCore", "IOPPlan", "IOPProgram", "IOPNet", "IOPNode", "IOPWire",
                "TestSupport", "PlanTestSupport",
            ],
            swiftSettings: nativeCPU),
    ]
)
