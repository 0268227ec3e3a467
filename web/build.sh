#!/usr/bin/env bash
# Builds the page's WebAssembly module into web/pkg: the docre library for wasm32-unknown-unknown
# (WebGPU back end) behind web/src/lib.rs, then wasm-bindgen's JavaScript glue. Installs the wasm32
# target and wasm-bindgen-cli (the version web/Cargo.toml pins) when missing. Then serve the folder:
#   python3 -m http.server -d web 8000      # and open http://localhost:8000
set -euo pipefail
cd "$(dirname "$0")"
version=$(sed -n 's/^wasm-bindgen = "=\(.*\)"/\1/p' Cargo.toml)
rustup target list --installed | grep -x wasm32-unknown-unknown >/dev/null || rustup target add wasm32-unknown-unknown
if ! wasm-bindgen --version 2>/dev/null | grep " $version\$" >/dev/null; then
    # Its own lock file first; a registry that lacks a version it pins (webpki-roots 1.0.11 was
    # missing from one) gets the newest versions its manifest allows instead.
    cargo install --locked wasm-bindgen-cli --version "$version" || cargo install wasm-bindgen-cli --version "$version"
fi
cargo build --release --target wasm32-unknown-unknown
wasm-bindgen --target web --no-typescript --out-dir pkg target/wasm32-unknown-unknown/release/docre_web.wasm
echo "built web/pkg; serve with: python3 -m http.server -d web 8000"
