#!/usr/bin/env bash
# Build the one-folder desktop app with PyInstaller, then prove it runs: start the built app
# headless on the bundled demo, quantize, compare and save a screenshot.
#
#   bash packaging/build.sh [OUTPUT_DIR]        (default: dist/ in the repository)
#
# PyInstaller goes into a throw-away virtual environment, never into the one you develop in.
# Not part of CI (it downloads PyInstaller and takes minutes).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-"$repo/dist"}
work=$(mktemp -d -t q8studio-build-XXXXXX)
trap 'rm -rf "$work"' EXIT

echo "== virtual environment in $work"
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --upgrade pip
# Install from a copy: building in the repository would leave build/ and egg-info behind.
mkdir "$work/src"
cp -r "$repo/q8studio" "$repo/pyproject.toml" "$repo/README.md" "$work/src/"
"$work/venv/bin/python" -m pip install --quiet "$work/src[packaging]"  # the extra pins PyInstaller

echo "== PyInstaller"
"$work/venv/bin/pyinstaller" --noconfirm --clean \
    --distpath "$out" --workpath "$work/build" "$repo/packaging/q8studio.spec"
cp "$repo/packaging/q8studio.desktop" "$out/q8studio/"

app="$out/q8studio/q8studio"
echo "== smoke test: $app --demo --run --screenshot"
shot="$out/q8studio-smoke.png"
rm -f "$shot"
started=$(date +%s)
QT_QPA_PLATFORM=offscreen HOME="$work/home" XDG_CONFIG_HOME="$work/config" \
    timeout 300 "$app" --demo --run --screenshot "$shot"
QT_QPA_PLATFORM=offscreen timeout 120 "$app" inspect "$out/q8studio/_internal/q8studio/resources/demo/digits_cnn.onnx" >/dev/null
test -s "$shot"
test -s "$out/q8studio/_internal/q8studio/resources/int8_questions.md"  # Help ▸ int8 questions reads it
echo "== OK: $(du -sh "$out/q8studio" | cut -f1) in $out/q8studio; demo run + screenshot in $(( $(date +%s) - started )) s: $shot"
