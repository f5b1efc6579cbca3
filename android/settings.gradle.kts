// The Android library as a standalone Gradle build (hosted CI: .github/workflows/android.yml).
// Not runnable on this project's machines: there is no Android SDK, NDK or Gradle here. See
// README.md for what runs locally instead (scripts/ffi-kotlin-test.sh).
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}

dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()
        mavenCentral()
    }
}

rootProject.name = "rewarder-android"
