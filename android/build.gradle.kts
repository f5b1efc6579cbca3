// The Android library `rewarder.android` over the UniFFI bindings of rewarder-ffi.
//
// NOT runnable on this project's machines (no Android SDK, NDK or Gradle): hosted CI builds it
// (.github/workflows/android.yml). Locally, scripts/ffi-kotlin-test.sh compiles the same
// sources with kotlinc and runs the same unit tests on the JVM.
//
// Inputs it does not commit, produced by the repository's scripts:
//   ../build/bindings/kotlin   generated Kotlin (scripts/ffi-bindings.sh)
//   ../build/jniLibs/<abi>/    librewarder_ffi.so for the four ABIs (scripts/ffi-android-ndk.sh, needs the NDK)
//   ../target/release/         the host library the JVM unit tests load through JNA
//   ../build/android-test-assets/s/   an S epoch for the instrumented cold-start test
//                                     (rewarder-testkit vectors --scale S --out …)
plugins {
    id("com.android.library") version "8.7.3"
    id("org.jetbrains.kotlin.android") version "2.1.0"
}

val repo: File = rootDir.parentFile

android {
    namespace = "rewarder.android"
    compileSdk = 35

    defaultConfig {
        minSdk = 24
        testInstrumentationRunner = "androidx.test.runner.AndroidJUnitRunner"
        consumerProguardFiles("consumer-rules.pro")
    }

    sourceSets {
        getByName("main") {
            kotlin.srcDir(File(repo, "build/bindings/kotlin"))
            jniLibs.srcDir(File(repo, "build/jniLibs"))
        }
        getByName("androidTest") {
            assets.srcDir(File(repo, "build/android-test-assets"))
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    kotlinOptions {
        jvmTarget = "17"
    }

    testOptions {
        unitTests.all {
            // Local unit tests load the host library (JNA) and read the golden vectors of the repository.
            it.systemProperty("jna.library.path", File(repo, "target/release").path)
            it.systemProperty("rewarder.vectors", File(repo, "testing/vectors").path)
        }
    }
}

dependencies {
    // The AAR carries JNA's Android dispatch libraries.
    implementation("net.java.dev.jna:jna:5.14.0@aar")

    // Local unit tests run on the desktop JVM: the JAR carries the desktop dispatch libraries.
    testImplementation("net.java.dev.jna:jna:5.14.0")
    testImplementation("junit:junit:4.13.2")

    androidTestImplementation("androidx.test.ext:junit:1.2.1")
    androidTestImplementation("androidx.test:runner:1.6.2")
}

val generateBindings by tasks.registering(Exec::class) {
    description = "Builds the host library and generates the Kotlin bindings (scripts/ffi-bindings.sh)."
    workingDir = repo
    commandLine("bash", "scripts/ffi-bindings.sh")
}

val buildNativeLibraries by tasks.registering(Exec::class) {
    description = "Builds librewarder_ffi.so for the four Android ABIs with cargo-ndk (needs ANDROID_NDK_HOME)."
    workingDir = repo
    commandLine("bash", "scripts/ffi-android-ndk.sh")
}

tasks.named("preBuild") {
    dependsOn(generateBindings, buildNativeLibraries)
}
