#!/usr/bin/env sh
# Builds the Antiphon plugin and bundles it as CLAP and VST3:
#
#   plugins/bundle.sh [--release] [extra cargo build args...]
#
# Output: $CARGO_TARGET_DIR (default: target)/bundled/Antiphon.clap and Antiphon.vst3
# Layouts follow the CLAP and VST3 specs: on Linux the .clap is the shared
# library itself and the .vst3 is a folder Antiphon.vst3/Contents/x86_64-linux/Antiphon.so;
# on macOS both are bundles (Contents/MacOS + Info.plist); on Windows the .clap
# is the DLL and the .vst3 folder holds Contents/x86_64-win/Antiphon.vst3.
#
# Release bundles carry no debug info: on Linux it is split off into
# bundled/Antiphon.debug (linked by .gnu_debuglink, so gdb and perf still find
# it); on macOS it is stripped (`strip -S`); Windows keeps it in the PDB anyway.
set -eu
cd "$(dirname "$0")/.."
profile=debug
if [ "${1:-}" = "--release" ]; then profile=release; fi
cargo build -p antiphon-plugin "$@"
target="${CARGO_TARGET_DIR:-target}"
out="$target/bundled"
arch="$(uname -m)"
mkdir -p "$out"
rm -rf "$out/Antiphon.clap" "$out/Antiphon.vst3"
case "$(uname -s)" in
  Darwin)
    lib="$target/$profile/libantiphon_plugin.dylib"
    for b in Antiphon.clap Antiphon.vst3; do
      mkdir -p "$out/$b/Contents/MacOS"
      cp "$lib" "$out/$b/Contents/MacOS/Antiphon"
      if [ "$profile" = release ]; then strip -S "$out/$b/Contents/MacOS/Antiphon"; fi
      printf 'BNDL????' > "$out/$b/Contents/PkgInfo"
      cat > "$out/$b/Contents/Info.plist" <<PLIST
<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0"><dict>
<key>CFBundleExecutable</key><string>Antiphon</string>
<key>CFBundleIdentifier</key><string>dev.antiphon.antiphon</string>
<key>CFBundleName</key><string>Antiphon</string>
<key>CFBundlePackageType</key><string>BNDL</string>
<key>CFBundleSignature</key><string>????</string>
</dict></plist>
PLIST
    done ;;
  MINGW*|MSYS*|CYGWIN*)
    lib="$target/$profile/antiphon_plugin.dll"
    cp "$lib" "$out/Antiphon.clap"
    mkdir -p "$out/Antiphon.vst3/Contents/x86_64-win"
    cp "$lib" "$out/Antiphon.vst3/Contents/x86_64-win/Antiphon.vst3" ;;
  *)
    lib="$target/$profile/libantiphon_plugin.so"
    if [ "$profile" = release ]; then
      objcopy --only-keep-debug "$lib" "$out/Antiphon.debug"
      objcopy --strip-debug --add-gnu-debuglink="$out/Antiphon.debug" "$lib" "$out/Antiphon.so.stripped"
      lib="$out/Antiphon.so.stripped"
    fi
    cp "$lib" "$out/Antiphon.clap"
    mkdir -p "$out/Antiphon.vst3/Contents/$arch-linux"
    cp "$lib" "$out/Antiphon.vst3/Contents/$arch-linux/Antiphon.so"
    rm -f "$out/Antiphon.so.stripped" ;;
esac
echo "bundled: $out/Antiphon.clap $out/Antiphon.vst3"
