#!/usr/bin/env python3
"""The PyTorch peer of `docre bench encoder`: HF transformers BertModel (all-MiniLM-L6-v2 by
default) on the CPU, batch 1, forward and forward + backward with a loss on both outputs docre's
encoder returns (last hidden states and last layer's attention), so both sides compute the same
gradients. Prints one line per case: median ms and [min-max] over --samples runs.

    python3 tools/peer_encoder.py [--model ../shared/models/all-MiniLM-L6-v2] [--lengths 128,256,512]
        [--threads 2] [--samples 5] [--gemm 1024]

`--gemm N` first times PyTorch's own N x N x N matmul (GFLOP/s), the CPU's GEMM ceiling that
`docre bench peak`'s FMA probe is read against.

Needs `pip install torch transformers safetensors`. Time it alternately with docre on a quiet
machine: the two share the cores.
"""
import argparse
import statistics
import time

import torch
from transformers import BertModel


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="../shared/models/all-MiniLM-L6-v2")
    ap.add_argument("--lengths", default="128,256,512")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--samples", type=int, default=5)
    ap.add_argument("--gemm", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    if a.gemm:
        x, y = torch.randn(a.gemm, a.gemm), torch.randn(a.gemm, a.gemm)
        torch.matmul(x, y)
        times = []
        for _ in range(a.samples):
            t0 = time.perf_counter()
            torch.matmul(x, y)
            times.append(time.perf_counter() - t0)
        rate = lambda t: 2 * a.gemm**3 / t / 1e9
        print(f"pytorch matmul {a.gemm}^3: {rate(statistics.median(times)):.1f} GFLOP/s [{rate(max(times)):.1f}-{rate(min(times)):.1f}]", flush=True)
    model = BertModel.from_pretrained(a.model, attn_implementation="eager")
    model.train()  # dropout on, as a training step runs it
    for length in [int(x) for x in a.lengths.split(",")]:
        ids = torch.randint(1000, 20000, (1, length))
        mask = torch.ones(1, length, dtype=torch.long)
        g_h = torch.randn(1, length, model.config.hidden_size)
        g_a = torch.randn(1, model.config.num_attention_heads, length, length)

        def forward():
            with torch.no_grad():
                model(input_ids=ids, attention_mask=mask, output_attentions=True)

        def forward_backward():
            model.zero_grad(set_to_none=True)
            out = model(input_ids=ids, attention_mask=mask, output_attentions=True)
            ((out.last_hidden_state * g_h).sum() + (out.attentions[-1] * g_a).sum()).backward()

        for name, f in [("forward", forward), ("forward + backward", forward_backward)]:
            f()
            times = []
            for _ in range(a.samples):
                t0 = time.perf_counter()
                f()
                times.append(time.perf_counter() - t0)
            print(f"pytorch encoder {name} L={length}: {1e3 * statistics.median(times):.1f} ms [{1e3 * min(times):.1f}-{1e3 * max(times):.1f}]", flush=True)


if __name__ == "__main__":
    main()
