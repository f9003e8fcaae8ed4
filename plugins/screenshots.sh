#!/usr/bin/env bash
# Photographs the plugin's editor headless, on a real stream:
#
#   plugins/screenshots.sh [OUT_DIR]        (default: target/screenshots)
#
# Runs the editor on a real stream (`editor_host` example: the plugin's
# generation side fed by a paced stand-in for an audio device) under Xvfb,
# drives it like a user with xdotool (types a model folder, presses Enter) and
# captures the window with xwd + ImageMagick. Writes:
#   loading.png              the built-in model loading (written fresh first)
#   ready-1.png ready-2.png  the built-in model running, 3 s apart (readouts move)
#   ready-folder.png         a model folder typed in (spaces in its path) running
#   failed.png               a model folder that does not exist, with the reason
#   log.txt                  the plugin's log (NICE_LOG)
# Needs: xvfb, x11-apps (xwd), imagemagick, xdotool, libgl1-mesa-dri.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-target/screenshots}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
for t in Xvfb xwd convert compare xdotool; do
  command -v "$t" >/dev/null || {
    echo "missing $t: apt-get install xvfb x11-apps imagemagick xdotool libgl1-mesa-dri" >&2
    exit 1
  }
done

# `--workspace`, not `-p`: the same feature set as the rest of the build (no second candle).
cargo build --workspace --example editor_host
bin="${CARGO_TARGET_DIR:-target}/debug/examples/editor_host"

work="$(mktemp -d)"
display=":$((90 + RANDOM % 100))"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

Xvfb "$display" -screen 0 1024x768x24 -nolisten tcp >/dev/null 2>&1 &
pids+=($!)
export DISPLAY="$display"
for _ in $(seq 50); do xdpyinfo >/dev/null 2>&1 && break; sleep 0.1; done

# A private cache, so the built-in model is written and loaded fresh.
export ANTIPHON_CACHE_DIR="$work/cache"
mkdir -p "$ANTIPHON_CACHE_DIR"
NICE_LOG="$out/log.txt" "$bin" >"$work/stdout.txt" 2>&1 &
pids+=($!)
win="$(timeout 60 xdotool search --sync --name '^Antiphon$' | head -n1)"

shot() { xwd -silent -id "$win" | convert xwd:- "png:$1"; }

# Which status the shot shows, from the colour of the status line (top band):
# amber = loading, green = ready, red = failed.
state_of() {
  local best="" bestn=0 n
  for pair in loading:"rgb(230,170,60)" ready:"rgb(80,200,120)" failed:"rgb(235,90,80)"; do
    n="$(convert "$1" -crop 560x70+0+24 +repage -fuzz 6% -fill magenta -opaque "${pair#*:}" \
      -fill black +opaque magenta -fill white -opaque magenta -colorspace gray \
      -format '%[fx:round(mean*w*h)]' info:)"
    if [ "$n" -gt "$bestn" ]; then best="${pair%%:*}"; bestn="$n"; fi
  done
  echo "${best:-unknown}"
}

# Waits (bounded) until the editor shows state $1; keeps the last shot in $2.
wait_for() {
  for _ in $(seq 300); do
    shot "$2"
    [ "$(state_of "$2")" = "$1" ] && return 0
    sleep 0.1
  done
  echo "the editor never showed '$1' (last: $(state_of "$2"))" >&2
  return 1
}

# Types a model folder into the editor's field and presses Enter.
choose_folder() {
  xdotool mousemove --window "$win" 200 "$field_y" click --repeat 3 1
  xdotool key --window "$win" ctrl+a BackSpace
  xdotool type --window "$win" --delay 15 "$1"
  xdotool key --window "$win" Return
}

# A fresh cache: the built-in model is written, then loaded (a second or two).
wait_for loading "$out/loading.png"
wait_for ready "$out/ready-1.png"
sleep 3
shot "$out/ready-2.png"
diff_px="$(compare -metric AE "$out/ready-1.png" "$out/ready-2.png" null: 2>&1 || true)"
echo "ready-1 → ready-2: $diff_px pixels changed"

# The model text field's row (logical px, scale 1), found from the layout.
field_y="${FIELD_Y:-120}"

# A copy of the built-in model under a name with spaces: loading it is a real
# load (the weight cache holds the model in use). (Non-ASCII typed by xdotool
# does not reach baseview's windows under Xvfb; the editor's own tests type it.)
model="$work/my models/tiny model"
mkdir -p "$model"
cp "$ANTIPHON_CACHE_DIR"/antiphon-builtin-*/* "$model/"
choose_folder "$model"
sleep 1
wait_for ready "$out/ready-folder.png"

choose_folder "/no/such/folder/my model"
wait_for failed "$out/failed.png"
sleep 0.5
shot "$out/failed.png"

for f in loading ready-1 ready-2 ready-folder failed; do echo "$out/$f.png: $(state_of "$out/$f.png")"; done
