#!/usr/bin/env bash
# Builds librewarder_ffi.so for the four Android ABIs with cargo-ndk into build/jniLibs/<abi>/,
# where the Gradle module (android/build.gradle.kts) packs them into the AAR:
#   arm64-v8a (aarch64-linux-android)   armeabi-v7a (armv7-linux-androideabi)
#   x86_64 (x86_64-linux-android)       x86 (i686-linux-android)
# With the default features (the embedded node included): ring compiles its C parts with the
# NDK's clang, which cargo-ndk sets up.
#
#   ANDROID_NDK_HOME=/path/to/ndk bash scripts/ffi-android-ndk.sh
#
# Needs the Android NDK (r26 or later). This project's machines have none, so here it explains
# that and exits 2; hosted CI runs it (.github/workflows/android.yml). What runs here instead:
# scripts/ffi-portability.sh (the arm64 static library without a C toolchain).
set -euo pipefail
cd "$(dirname "$0")/.."

ANDROID_API="${ANDROID_API:-24}"
ndk="${ANDROID_NDK_HOME:-${ANDROID_NDK_ROOT:-}}"
if [ -z "$ndk" ] || [ ! -d "$ndk/toolchains/llvm" ]; then
  echo "ffi-android-ndk: no Android NDK (set ANDROID_NDK_HOME to an NDK r26+); nothing was built." >&2
  echo "ffi-android-ndk: this cannot run on the project's machines; hosted CI runs it." >&2
  exit 2
fi
export ANDROID_NDK_HOME="$ndk"

installed="$(rustup target list --installed)"
for t in aarch64-linux-android armv7-linux-androideabi x86_64-linux-android i686-linux-android; do
  grep -qx "$t" <<<"$installed" || rustup target add "$t" \
    || { echo "ffi-android-ndk: cannot install the Rust target $t" >&2; exit 1; }
done
command -v cargo-ndk >/dev/null 2>&1 || cargo install cargo-ndk --locked \
  || { echo "ffi-android-ndk: cannot install cargo-ndk" >&2; exit 1; }

cargo ndk -t arm64-v8a -t armeabi-v7a -t x86_64 -t x86 --platform "$ANDROID_API" -o build/jniLibs \
  build -p rewarder-ffi --release --lib --locked --no-default-features --features embedded
find build/jniLibs -name 'librewarder_ffi.so' -exec ls -l {} \;
