#!/usr/bin/env python3
"""The page in a real browser: headless Chromium with WebGPU on its built-in SwiftShader, driven
through chromedriver's WebDriver protocol (standard library only).

  python3 web/test.py --docre target/release/docre [--checkpoint DIR] [--screenshot PNG]

Needs web/pkg (web/build.sh), `chromium` and `chromedriver` on PATH, and a native adapter for
the docre binary (lavapipe). Without --checkpoint, `docre demo` makes one. Checks:
  1. the page finds the WebGPU adapter and opens a device on it;
  2. given that checkpoint and the bundled documents (data/demo/redocred_sample.json), the page
     shows the triples `docre predict` writes natively, in the same order, each with a positive
     finite score within SCORE_TOLERANCE of the score in docre's result.json;
  3. a document with an error gets the message the command line gives for the same file;
  4. `docre selftest`'s kernel checks in the page: none fails, and every kernel family passes
     at least one variant (variants the adapter cannot run, such as subgroup ones, skip);
and saves a screenshot of the page with its predictions.
"""
import argparse, base64, json, math, os, shutil, socket, subprocess, sys, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEB = os.path.join(ROOT, "web")
FLAGS = ["--headless=new", "--no-sandbox", "--enable-unsafe-webgpu", "--enable-unsafe-swiftshader",
         "--use-webgpu-adapter=swiftshader", "--window-size=1200,1600"]
TIMEOUT_S = 600
# How far a page's score may be from docre predict's, relative to max(1, |native score|): the
# encoder's stated tolerance against PyTorch (1e-4 of the largest magnitude, docs/testing.md).
SCORE_TOLERANCE = 1e-4
# Every kernel family of `docre selftest` (the tiny-model training check is native-only).
FAMILIES = ["matmul", "bilinear", "softmax", "layernorm", "eca", "lse-pool", "pair-context", "elementwise", "embedding", "reduce", "dropout", "adamw", "loss"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base, method, path, body=None):
    req = urllib.request.Request(base + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=TIMEOUT_S) as r:
        return json.loads(r.read())["value"]


def wait_port(port, what, proc):
    for _ in range(200):
        if proc.poll() is not None:
            sys.exit(f"{what} exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    sys.exit(f"{what} never listened on port {port}")


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--docre", default=os.path.join(ROOT, "target/release/docre"))
    ap.add_argument("--checkpoint")
    ap.add_argument("--screenshot")
    args = ap.parse_args()
    docre = os.path.abspath(args.docre)
    if not os.path.exists(os.path.join(WEB, "pkg", "docre_web.js")):
        sys.exit("web/pkg is missing: run web/build.sh first")
    serve = tempfile.mkdtemp(prefix="docre-web-")
    procs = []
    try:
        for f in ["index.html", "app.js", "style.css"]:
            shutil.copy(os.path.join(WEB, f), serve)
        shutil.copytree(os.path.join(WEB, "pkg"), os.path.join(serve, "pkg"))
        ckpt = args.checkpoint
        if not ckpt:
            out = os.path.join(serve, "demo")
            r = run([docre, "demo", "--out", out])
            if r.returncode:
                sys.exit(f"docre demo failed:\n{r.stderr}")
            ckpt = os.path.join(out, "best")
        shutil.copytree(ckpt, os.path.join(serve, "ckpt"))
        shutil.copy(os.path.join(ROOT, "data/demo/redocred_sample.json"), os.path.join(serve, "docs.json"))
        docs = json.load(open(os.path.join(serve, "docs.json")))
        bad = [dict(docs[0])]
        bad[0]["vertexSet"] = [list(e) for e in bad[0]["vertexSet"]]
        bad[0]["vertexSet"][1] = [dict(m, pos=[m["pos"][1], m["pos"][0]]) for m in bad[0]["vertexSet"][1]]
        json.dump(bad, open(os.path.join(serve, "bad.json"), "w"))

        # The native reference, and the command line's message for the bad file (named as the
        # page names it: by its file name).
        t0 = time.time()
        r = run([docre, "predict", "--checkpoint", "ckpt", "--data", "docs.json", "--out", "native"], cwd=serve)
        native_seconds = time.time() - t0
        if r.returncode:
            sys.exit(f"native predict failed:\n{r.stderr}")
        native = json.load(open(os.path.join(serve, "native", "result.json")))
        r = run([docre, "predict", "--checkpoint", "ckpt", "--data", "bad.json", "--out", "native-bad"], cwd=serve)
        if r.returncode == 0:
            sys.exit("native predict accepted bad.json")
        cli_message = r.stderr.strip().splitlines()[-1].removeprefix("error: ")

        http_port, wd_port = free_port(), free_port()
        procs.append(subprocess.Popen([sys.executable, "-m", "http.server", str(http_port), "-b", "127.0.0.1", "-d", serve],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        procs.append(subprocess.Popen(["chromedriver", f"--port={wd_port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_port(http_port, "the HTTP server", procs[0])
        wait_port(wd_port, "chromedriver", procs[1])
        wd = f"http://127.0.0.1:{wd_port}"
        sid = call(wd, "POST", "/session", {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {"args": FLAGS}}}})["sessionId"]
        page = f"http://127.0.0.1:{http_port}/index.html"

        def js(script):
            return call(wd, "POST", f"/session/{sid}/execute/sync", {"script": script, "args": []})

        def settle(url, want):
            call(wd, "POST", f"/session/{sid}/url", {"url": url})
            t0 = time.time()
            while time.time() - t0 < TIMEOUT_S:
                s = js("return document.body.dataset.state;")
                if s in ("done", "error", "no-webgpu"):
                    if s != want:
                        adapter = js("return document.getElementById('adapter').textContent;")
                        sys.exit(f"FAIL {url}: state {s}, wanted {want}; adapter: {adapter}; error: {js('return window.docreError;')}")
                    return time.time() - t0
                time.sleep(0.5)
            sys.exit(f"FAIL {url}: no result in {TIMEOUT_S} s (state {js('return document.body.dataset.state;')})")

        failures = []
        try:
            seconds = settle(f"{page}?checkpoint=ckpt/&documents=docs.json", "done")
            adapter = js("return document.getElementById('adapter').textContent;")
            print(f"ok   page on {adapter}")
            result = js("return window.docreResult;")
            page_facts = [(f["title"], f["h_idx"], f["t_idx"], f["r"]) for f in result["facts"]]
            native_facts = [(f["title"], f["h_idx"], f["t_idx"], f["r"]) for f in native]
            # A score's difference relative to max(1, |native score|): the page's kernels (no
            # subgroups, other tiles) sum in another order than the native ones.
            diffs = [(abs(p["score"] - n["score"]) / max(1.0, abs(n["score"])), p, n["score"]) for p, n in zip(result["facts"], native)]
            worst, worst_fact, worst_native = max(diffs, key=lambda d: d[0], default=(0.0, None, None))
            if page_facts != native_facts:
                failures.append(f"the page's {len(page_facts)} facts differ from docre predict's {len(native_facts)}: "
                                f"only in the page {sorted(set(page_facts) - set(native_facts))[:5]}, only native {sorted(set(native_facts) - set(page_facts))[:5]}")
            elif not all(math.isfinite(f["score"]) and f["score"] > 0 for f in result["facts"]):
                failures.append("a score is not a positive finite margin")
            elif worst > SCORE_TOLERANCE:
                failures.append(f"a score differs from docre predict's by {worst:.2e} of its magnitude (limit {SCORE_TOLERANCE:.0e}): {worst_fact} against {worst_native}")
            else:
                first = js("return window.docreSeconds;")
                again = call(wd, "POST", f"/session/{sid}/execute/async", {"script": "const done = arguments[arguments.length - 1]; window.docreRun().then(() => done(window.docreSeconds));", "args": []})
                print(f"ok   {len(page_facts)} facts over {len(result['documents'])} documents equal docre predict's, scores within {worst:.1e} of theirs "
                      f"(page load and first prediction {seconds:.1f} s, of it prediction {first:.1f} s; again {again:.1f} s; "
                      f"native `docre predict` {native_seconds:.1f} s wall)")
            if args.screenshot:
                png = base64.b64decode(call(wd, "GET", f"/session/{sid}/screenshot"))
                open(args.screenshot, "wb").write(png)
                print(f"ok   screenshot {args.screenshot}")
            settle(f"{page}?checkpoint=ckpt/&documents=bad.json", "error")
            message = js("return window.docreError;")
            if message != cli_message:
                failures.append(f"the page says {message!r}; the command line says {cli_message!r}")
            else:
                print(f"ok   a bad document gets the command line's message: {message}")
            seconds = settle(f"{page}?selftest", "done")
            rows = js("return window.docreSelftest;")
            failed = [f"{r['family']} {r['variant']}: {r['message']}" for r in rows if r["outcome"] == "fail"]
            passed = {r["family"] for r in rows if r["outcome"] == "pass"}
            missing = sorted(set(FAMILIES) - passed)
            for f in failed:
                failures.append(f"selftest in the page: {f}")
            if missing:
                failures.append(f"selftest in the page: no variant of {missing} passed")
            if not failed and not missing:
                print(f"ok   selftest in the page: {sum(r['outcome'] == 'pass' for r in rows)} checks passed, "
                      f"{sum(r['outcome'] == 'skip' for r in rows)} skipped (variants this adapter cannot run), every family covered ({seconds:.0f} s)")
        finally:
            call(wd, "DELETE", f"/session/{sid}")
        for f in failures:
            print(f"FAIL {f}")
        sys.exit(1 if failures else 0)
    finally:
        for p in procs:
            p.terminate()
        shutil.rmtree(serve, ignore_errors=True)


if __name__ == "__main__":
    main()
