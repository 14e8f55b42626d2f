# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""The original VideoLLaMA2's side of the side-by-side benchmarks, run inside the original's own environment.

The original needs decord and transformers 4.4x, which cannot live beside this project's transformers 5, so the
benchmarks start this script with the original's interpreter (see docs/benchmarks.md for the set-up) and send it one
JSON request per line on stdin; it answers one JSON line on stdout. It times only the work itself (no start-up, no
messaging), so that each side's figure is comparable with the same work timed in the benchmark's own process.

    <original python> bench/original_side.py --original-repo PATH_TO_VideoLLaMA2_CHECKOUT

Requests: {"op": "video", "path", "num_frames", "image_processor": {...}, "save": null | "x.npy"} -> {"ms"};
{"op": "build_model", "folder", "config", "dtype", "seed"} (a random original model, saved in the original layout to
`folder` so that both sides load the same weights) -> {}; {"op": "prefill" | "generate" | "profile", "inputs": "x.npz",
"new_tokens"} -> timings in ms; {"op": "peak_memory", "inputs", "new_tokens", "measure": "rss" | "tensors"} -> {"mib"};
{"op": "mm_infer_loop", "folder", "videos", "question", "new_tokens"} (the original's dataset loop, in a fresh
process) -> {"seconds", "load_s", "answers", "peak_rss_mib"}.
This file imports nothing of videollama2_hf (common.py only needs torch): it runs under the original's transformers.
"""

import argparse
import json
import os
import sys
import warnings

from common import peak_rss_growth_mib, peak_rss_mib, peak_tensor_mib, timed_ms


def _eager_clip_config(config_class):
    """The original asks for FlashAttention-2 in its CLIP tower, which needs CUDA (and which transformers 4.40's CLIP
    does not implement): on CPU its tower runs eager attention, the only other one that version has."""

    class EagerCLIPVisionConfig(config_class):
        @property
        def _attn_implementation(self):
            return "eager"

        @_attn_implementation.setter
        def _attn_implementation(self, value):
            pass

    return EagerCLIPVisionConfig


class OriginalSide:
    def __init__(self):
        import numpy as np
        import torch

        self.np, self.torch = np, torch
        self.model = None

    def video(self, path, num_frames, image_processor, save=None):
        from transformers import CLIPImageProcessor
        from videollama2.mm_utils import process_video

        processor = CLIPImageProcessor(**image_processor)
        # The original's inference API (`model_init`) binds process_video with aspect_ratio=None.
        run = lambda: process_video(path, processor, aspect_ratio=None, num_frames=num_frames)  # noqa: E731
        if save:
            self.np.save(save, run().numpy())
            return {}
        return {"ms": timed_ms(run)}

    def build_model(self, folder, config, dtype, seed):
        """A random original Mistral-based VideoLLaMA2 whose tower config is `folder/vision_tower` (written by the
        benchmark), saved as `folder/model.safetensors` + `config.json` in the original layout."""
        from safetensors.torch import save_file
        from videollama2.model import encoder
        from videollama2.model.videollama2_mistral import Videollama2MistralConfig, Videollama2MistralForCausalLM

        encoder.CLIPVisionConfig = _eager_clip_config(encoder.CLIPVisionConfig)
        self.torch.manual_seed(seed)
        original_config = Videollama2MistralConfig(**config)
        model = Videollama2MistralForCausalLM(original_config)
        model = model.to(getattr(self.torch, dtype)).eval()
        state = {key: value.contiguous() for key, value in model.state_dict().items() if key != "lm_head.weight"}
        state["lm_head.weight"] = model.lm_head.weight.detach().clone()
        save_file(state, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
        original_config.save_pretrained(folder)
        self.model = model
        return {}

    def mm_infer_loop(self, folder, videos, question, new_tokens):
        """The original's own way through a dataset, as its inference scripts go: `model_init`, then for each video
        its `process_video` (decord) and `mm_infer`, one at a time. `mm_infer` hardcodes CUDA and fp16
        (`.half().cuda()` on the pixels and ids): on CPU those calls return the tensor unchanged, and the model that
        `model_init` loads in fp16 (weights saved in fp16: exact) runs in fp32, as ours does. Timed from `model_init`
        to the last answer; the peak RSS is this process's (start it fresh for this request)."""
        import time

        from videollama2 import mm_infer, model_init
        from videollama2.model import encoder

        encoder.CLIPVisionConfig = _eager_clip_config(encoder.CLIPVisionConfig)
        self.torch.Tensor.cuda = lambda tensor, *args, **kwargs: tensor
        self.torch.Tensor.half = lambda tensor, *args, **kwargs: tensor
        start = time.perf_counter()
        model, processor, tokenizer = model_init(folder, device="cpu")
        model = model.float()
        loaded = time.perf_counter()
        answers = [
            mm_infer(
                processor["video"](path),
                question,
                model,
                tokenizer,
                modal="video",
                do_sample=False,
                max_new_tokens=new_tokens,
            )
            for path in videos
        ]
        end = time.perf_counter()
        return {"seconds": end - start, "load_s": loaded - start, "answers": answers, "peak_rss_mib": peak_rss_mib()}

    def _inputs(self, inputs):
        data = self.np.load(inputs)
        dtype = self.model.dtype
        return self.torch.from_numpy(data["input_ids"]), self.torch.from_numpy(data["pixel_values"]).to(dtype)

    def prefill(self, inputs, **_):
        input_ids, pixels = self._inputs(inputs)
        with self.torch.inference_mode():
            return {"ms": timed_ms(lambda: self.model(input_ids, images=[(pixels, "video")], use_cache=True))}

    def generate(self, inputs, new_tokens, **_):
        input_ids, pixels = self._inputs(inputs)
        kwargs = dict(images=[(pixels, "video")], do_sample=False, max_new_tokens=new_tokens)
        kwargs.update(min_new_tokens=new_tokens, pad_token_id=0)
        with self.torch.inference_mode():
            ids = []
            ms = timed_ms(lambda: ids.append(self.model.generate(input_ids, **kwargs)))
        return {"ms": ms, "ids": ids[0][0].tolist()}

    def profile(self, inputs, **_):
        """Prefill split into vision tower, connector and language model (with the merge of embeddings)."""
        input_ids, pixels = self._inputs(inputs)
        model = self.model
        tower, connector = model.get_model().get_vision_tower(), model.get_model().mm_projector
        with self.torch.inference_mode():
            features = []
            tower_ms = timed_ms(lambda: features.append(tower(pixels)))
            frames = features[0].unsqueeze(0)
            connector_ms = timed_ms(lambda: connector(frames))
            total_ms = timed_ms(lambda: model(input_ids, images=[(pixels, "video")], use_cache=True))
        return {"tower": tower_ms, "connector": connector_ms, "language model": total_ms - tower_ms - connector_ms}

    def peak_memory(self, inputs, new_tokens=0, measure="rss", **_):
        """Peak memory (MiB) of one forward over the prompt, or of a `new_tokens` greedy generate: RSS growth or the
        peak of tensor bytes (common.py)."""
        input_ids, pixels = self._inputs(inputs)
        if new_tokens:
            kwargs = dict(images=[(pixels, "video")], do_sample=False, max_new_tokens=new_tokens)
            kwargs.update(min_new_tokens=new_tokens, pad_token_id=0)
            run = lambda: self.model.generate(input_ids, **kwargs)  # noqa: E731
        else:
            run = lambda: self.model(input_ids, images=[(pixels, "video")], use_cache=True)  # noqa: E731
        with self.torch.inference_mode():
            return {"mib": (peak_rss_growth_mib if measure == "rss" else peak_tensor_mib)(run)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--original-repo", required=True, help="checkout of github.com/DAMO-NLP-SG/VideoLLaMA2")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    sys.path.insert(0, args.original_repo)
    warnings.filterwarnings("ignore")
    import torch
    import transformers

    if args.threads:
        torch.set_num_threads(args.threads)
    side = OriginalSide()
    print(json.dumps({"transformers": transformers.__version__, "torch": torch.__version__}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        operation = request.pop("op")
        try:
            answer = getattr(side, operation)(**request)
        except Exception as error:  # reported to the benchmark, which stops with it
            answer = {"error": f"{type(error).__name__}: {error}"}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
