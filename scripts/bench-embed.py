"""The PyTorch side of scripts/bench-embed.sh: sentence-transformers all-MiniLM-L6-v2 on the CPU,
the same texts, batch size 32, every core; prints chunks per second of the best of ROUNDS."""
import json
import os
import sys
import time

import torch
from sentence_transformers import SentenceTransformer


def main() -> None:
    texts_file, model_dir = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    with open(texts_file, encoding="utf-8") as f:
        texts = [json.loads(line) for line in f if line.strip()]
    torch.set_num_threads(os.cpu_count() or 1)
    model = SentenceTransformer(model_dir, device="cpu")
    model.max_seq_length = 256
    model.encode(texts, batch_size=32, normalize_embeddings=True)
    best = float("inf")
    for _ in range(max(rounds, 1)):
        started = time.perf_counter()
        vectors = model.encode(texts, batch_size=32, normalize_embeddings=True)
        assert len(vectors) == len(texts)
        best = min(best, time.perf_counter() - started)
    print(
        f"pytorch-sentence-transformers chunks={len(texts)} seconds={best:.2f} "
        f"chunks_per_s={len(texts) / best:.1f} threads={torch.get_num_threads()} torch={torch.__version__}"
    )


if __name__ == "__main__":
    main()
