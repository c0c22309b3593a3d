#!/usr/bin/env python3
"""Issue 2's open question: how precise are goldens/<model>.prompts.json?

Runs each model folder with Hugging Face transformers in float32 on the bf16 weights (as the
assets README says the goldens were made) under several matmul precisions — CPU, GPU with TF32
off, GPU with TF32 on — and prints, per setting, the max |logit − golden| over the first 8 last-
position logits of every prompt, plus the strict-fp32 logits themselves (JSON) so that quad's
can be compared with them. Run on the GPU machine (torch + transformers), from the repo root:
  python3 scripts/hf_golden_precision.py $QUAD_ASSETS [MODEL ...]
"""
import json
import os
import sys

import torch
import transformers


def last_logits(model, ids, device):
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids], device=device)).logits
    return out[0, -1, :8].double().cpu().tolist()


def main():
    assets = sys.argv[1]
    models = sys.argv[2:] or ["tiny-llama3-30m", "tiny-qwen2-27m"]
    for name in models:
        folder = os.path.join(assets, "models", name)
        golden_path = os.path.join(assets, "goldens", name + ".prompts.json")
        if not (os.path.isdir(folder) and os.path.exists(golden_path)):
            print(json.dumps({"model": name, "skipped": "not carried"}))
            continue
        golden = json.load(open(golden_path))
        settings = [("cpu", False)]
        if torch.cuda.is_available():
            settings += [("cuda", False), ("cuda", True)]
        for device, tf32 in settings:
            torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.backends.cudnn.allow_tf32 = tf32
            model = transformers.AutoModelForCausalLM.from_pretrained(
                folder, dtype=torch.float32).to(device).eval()
            worst, logits = 0.0, {}
            for prompt, g in golden.items():
                got = last_logits(model, g["ids"], device)
                logits[prompt] = got
                worst = max(worst, max(abs(a - b) for a, b in zip(got, g["last_logits_first8"])))
            print(json.dumps({"model": name, "device": device, "tf32": tf32,
                              "max_abs_vs_golden": worst,
                              "logits": logits if (device, tf32) == ("cuda", False) else None,
                              "torch": torch.__version__,
                              "transformers": transformers.__version__}), flush=True)


if __name__ == "__main__":
    main()
