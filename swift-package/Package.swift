// swift-tools-version: 6.0
// SiwaKit: Sign in with Apple for iOS and macOS apps, over siwa-core's Rust client (UniFFI).
import PackageDescription

#if os(Linux)
// On Linux (CI, server-side Swift) the Rust library is the one cargo built; the test script
// scripts/test-swift.sh copies it into .rust/ beside this manifest.
let rustLibraryDirectory = Context.packageDirectory + "/.rust"
let rustLibrary: Target = .systemLibrary(name: "siwa_ffiFFI", path: "Sources/siwa_ffiFFI")
let rustLinking: [LinkerSetting] = [
    .unsafeFlags(["-L", rustLibraryDirectory, "-Xlinker", "-rpath", "-Xlinker", rustLibraryDirectory]),
]
#else
// On Apple platforms: the XCFramework (device, simulator and macOS slices) that
// scripts/build-xcframework.sh builds on a Mac with Xcode.
let rustLibrary: Target = .binaryTarget(name: "siwa_ffiFFI", path: "SiwaFFI.xcframework")
let rustLinking: [LinkerSetting] = []
#endif

let package = Package(
    name: "SiwaKit",
    platforms: [.iOS(.v15), .macOS(.v12)],
    products: [
        .library(name: "SiwaKit", targets: ["SiwaKit"]),
        // Credentials from mock-apple instead of Apple: for tests, previews and UI tests.
        .library(name: "SiwaKitTesting", targets: ["SiwaKitTesting"]),
    ],
    targets: [
        rustLibrary,
        .target(
            name: "SiwaKit",
            dependencies: ["siwa_ffiFFI"],
            // Generated/ is UniFFI's output (scripts/generate-bindings.sh); the rest is ours.
            linkerSettings: rustLinking
        ),
        .target(name: "SiwaKitTesting", dependencies: ["SiwaKit"]),
        .testTarget(name: "SiwaKitTests", dependencies: ["SiwaKit", "SiwaKitTesting"]),
        // bench/ffi: the cost of one call into Rust from Swift.
        .executableTarget(name: "FFIRoundTrip", dependencies: ["SiwaKit"], path: "Benchmarks/FFIRoundTrip"),
    ],
    swiftLanguageModes: [.v6]
)
