#!/usr/bin/env python3
"""The PyTorch peer of two docre benchmarks, run with DocRE-II's own modules
(DeepLearnXMU/DocRE-II: `CCNet.py`, `model.py`, `losses.py`) on the CPU:

    layer  one inference layer (CCNet's CrissCrossAttention_layer111, 4 heads, width D) forward
           and backward on one document of N entities, against
           `docre bench eca --only "layer fwd+bwd" --n 26,42`
    step   one stage-2 training step with the encoder frozen (its outputs computed once, as
           docre's encoder cache does), against
           `docre bench step --freeze-encoder --layers 1 --stages 2 --batch 1 --docs 8`:
           mentions, entity pairs, the base module, two CCA passes with the contrastive loss,
           backward, gradient clipping and AdamW over the heads

    python3 tools/peer_docre2.py --repo DocRE-II layer [--n 26,42] [--width 512] [--samples 5]
    python3 tools/peer_docre2.py --repo DocRE-II step [--docs 8,276] [--samples 5]
        [--data ../shared/data/redocred/dev_revised.json] [--model ../shared/models/all-MiniLM-L6-v2]

`--repo` is a checkout of DocRE-II. Its code is used as published with two adaptations, both
needed to run it at all here: `model.py` writes BERT-base's width 768 in two places, which become
the encoder's width (MiniLM's 384), and the imports it needs only for the encoder it does not run
here (its own `BERT.py`, `opt_einsum`, `ujson`) are replaced by stand-ins. Dropout is off in the
layer case (docre's benchmark layer has none) and on in the step (docre's step applies it).

Prints one line per case: median ms and [min-max] over --samples runs, after one untimed run.
Needs `pip install torch transformers`. Time it alternately with docre on a quiet machine.
"""
import argparse
import json
import random
import statistics
import sys
import time
import types

import torch


def timed(f, samples):
    f()
    times = []
    for _ in range(samples):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return f"{1e3 * statistics.median(times):.1f} ms [{1e3 * min(times):.1f}-{1e3 * max(times):.1f}]"


def layer(a):
    from transformers import BertConfig
    import CCNet

    for n in [int(x) for x in a.n.split(",")]:
        cfg = BertConfig(hidden_size=a.width, layer_norm_eps=1e-12, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
        torch.manual_seed(0)
        module = CCNet.CrissCrossAttention_layer111(cfg, 4)
        mask = 1.0 - torch.eye(n).unsqueeze(0)
        f_in = torch.randn(1, n, n, a.width, requires_grad=True)
        r_in = torch.randn(1, n, n, a.width, requires_grad=True)
        g_f, g_r = torch.randn(1, n, n, a.width), torch.randn(1, n, n, a.width)

        def fwd_bwd():
            module.zero_grad(set_to_none=True)
            f_in.grad = r_in.grad = None
            f_out, r_out, _ = module(f_in, r_in, mask)
            ((f_out * g_f).sum() + (r_out * g_r).sum()).backward()

        print(f"pytorch DocRE-II inference layer fwd+bwd N={n} (P={n * (n - 1)}): {timed(fwd_bwd, a.samples)}", flush=True)


def docre2_model(repo):
    """DocRE-II's DocREModel class, adapted as the module docstring says."""
    stub = types.ModuleType("BERT")
    stub.BertModel = type("NoEncoder", (), {"from_pretrained": staticmethod(lambda *a, **k: torch.nn.Identity())})
    sys.modules["BERT"] = stub
    sys.modules["opt_einsum"] = types.SimpleNamespace(contract=torch.einsum)
    sys.modules["ujson"] = json
    source = open(f"{repo}/model.py").read()
    widths = ["torch.zeros(768)", "expand(hs.size()[0], 768)"]
    assert all(source.count(w) == 1 for w in widths), "model.py changed: look again at its hard-coded widths"
    for w in widths:
        source = source.replace(w, w.replace("768", "self.hidden_size"))
    module = types.ModuleType("docre2_model")
    module.__file__ = f"{repo}/model.py"
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module.DocREModel


def features(doc, tok, rel2id, max_len=512):
    """ATLOP's featurization (DocRE-II's prepro.py): `*` around every mention, [CLS] ... [SEP],
    entity_pos as (first token, one past the last, sentence), every ordered pair of entities."""
    starts = {(m["sent_id"], m["pos"][0]) for e in doc["vertexSet"] for m in e}
    ends = {(m["sent_id"], m["pos"][1] - 1) for e in doc["vertexSet"] for m in e}
    pieces, sent_map, sent_spans = [], [], []
    for si, sent in enumerate(doc["sents"]):
        first, row = len(pieces), {}
        for wi, w in enumerate(sent):
            t = tok.tokenize(w)
            if (si, wi) in starts:
                t = ["*"] + t
            if (si, wi) in ends:
                t = t + ["*"]
            row[wi] = len(pieces)
            pieces.extend(t)
        row[len(sent)] = len(pieces)
        sent_map.append(row)
        sent_spans.append((first + 1, len(pieces) + 1))
    pieces = pieces[: max_len - 2]
    ids = tok.convert_tokens_to_ids(["[CLS]"] + pieces + ["[SEP]"])
    entity_pos = [[(sent_map[m["sent_id"]][m["pos"][0]], sent_map[m["sent_id"]][m["pos"][1]], m["sent_id"]) for m in e] for e in doc["vertexSet"]]
    n = len(entity_pos)
    hts = [[h, t] for h in range(n) for t in range(n) if h != t]
    gold = {}
    for lab in doc.get("labels", []):
        gold.setdefault((lab["h"], lab["t"]), []).append(rel2id[lab["r"]])
    labels = []
    for h, t in hts:
        row = [0.0] * len(rel2id)
        for r in gold.get((h, t), []):
            row[r] = 1.0
        if not any(row):
            row[0] = 1.0
        labels.append(row)
    return ids, entity_pos, hts, labels, [0] * len(hts), sent_spans


def step(a):
    from transformers import AutoConfig, AutoTokenizer, BertModel

    DocREModel = docre2_model(a.repo)
    tok = AutoTokenizer.from_pretrained(a.model)
    rel2id = json.load(open(a.rel2id))
    docs = json.load(open(a.data))
    encoder = BertModel.from_pretrained(a.model, attn_implementation="eager").eval()
    for d in [int(x) for x in a.docs.split(",")]:
        ids, entity_pos, hts, labels, evidence, sent_spans = features(docs[d], tok, rel2id)
        with torch.no_grad():
            out = encoder(input_ids=torch.tensor([ids]), output_attentions=True, output_hidden_states=True)
        seq = (out.hidden_states[-1] + out.hidden_states[-2] + out.hidden_states[-3]) / 3.0
        att = out.attentions[-1]
        mask = torch.ones(1, len(ids))
        cfg = AutoConfig.from_pretrained(a.model)
        cfg.num_labels, cfg.train_base, cfg.decoder_layers = len(rel2id), False, 1
        torch.manual_seed(0)
        random.seed(0)
        model = DocREModel(types.SimpleNamespace(model_name_or_path=a.model), cfg, emb_size=cfg.hidden_size, block_size=64, num_labels=4)
        model.model_initial()
        model.Total = 1000  # create_sample's schedule divides by it
        model.train()
        params = [p for n, p in model.named_parameters() if not n.startswith("encoder.")]
        opt = torch.optim.AdamW(params, lr=1e-4, eps=1e-6)

        def one():
            opt.zero_grad(set_to_none=True)
            mf = model.get_mention_rep(seq, att, mask, [entity_pos], [[0] * len(entity_pos)], [sent_spans])
            ef = model.get_entity_pair(mf, seq, [hts], [sent_spans], seq, mask, labels=[labels], evidence_num=[evidence])
            _, loss, loss1, _ = model.Entity_level_predict(ef)
            ((loss + loss1) / 2).backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()

        n = len(entity_pos)
        print(f"pytorch DocRE-II stage-2 step doc {d} ({n} entities, P={len(hts)}, {len(ids)} tokens): {timed(one, a.samples)}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", required=True, help="a checkout of DeepLearnXMU/DocRE-II")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--samples", type=int, default=5)
    sub = ap.add_subparsers(dest="what", required=True)
    lp = sub.add_parser("layer")
    lp.add_argument("--n", default="26,42")
    lp.add_argument("--width", type=int, default=512)
    sp = sub.add_parser("step")
    sp.add_argument("--docs", default="8,276")
    sp.add_argument("--data", default="../shared/data/redocred/dev_revised.json")
    sp.add_argument("--rel2id", default="../shared/data/docred_meta/rel2id.json")
    sp.add_argument("--model", default="../shared/models/all-MiniLM-L6-v2")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    sys.path.insert(0, a.repo)
    layer(a) if a.what == "layer" else step(a)


if __name__ == "__main__":
    main()
